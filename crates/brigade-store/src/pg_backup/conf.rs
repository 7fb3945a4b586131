//! pgBackRest's configuration file, written from brigade's settings before every command so
//! that it cannot drift from brigade.toml. It lives in the repository: the server's
//! `archive_command` and every brigade command name it with `--config`, so one machine can
//! hold several clusters' repositories without sharing /etc/pgbackrest.conf.

use std::fmt::Write as _;

use super::{PitrError, Plan};

/// The file's text. Locks and the asynchronous-archiving spool live in the repository too, so
/// two clusters on one host (tests, a scratch check) never share a lock.
pub(super) fn render(plan: &Plan) -> String {
    let repo = plan.repo.display();
    let mut text = String::from(
        "# Written by brigade from [backup] of brigade.toml; edits are overwritten.\n",
    );
    let _ = write!(
        text,
        "[global]\n\
         repo1-path={repo}\n\
         repo1-retention-full={retention}\n\
         lock-path={repo}/lock\n\
         spool-path={repo}/spool\n\
         log-path={repo}/log\n\
         log-level-console=warn\n\
         log-level-stderr=off\n\
         log-level-file=info\n\
         start-fast=y\n\
         compress-type=lz4\n\
         \n\
         [{stanza}]\n\
         pg1-path={data}\n\
         pg1-port={port}\n\
         pg1-socket-path={socket}\n\
         pg1-user={user}\n",
        retention = plan.retention_full,
        stanza = plan.stanza,
        data = plan.pg_data.display(),
        port = plan.port,
        socket = plan.socket_dir.display(),
        user = plan.pg_user,
    );
    text
}

/// Writes the file (and the repository folder) when it is missing or differs.
pub(super) fn write(plan: &Plan) -> Result<(), PitrError> {
    let file = plan.config_file();
    std::fs::create_dir_all(&plan.repo).map_err(PitrError::io(format!(
        "creating the repository {}",
        plan.repo.display()
    )))?;
    let text = render(plan);
    if std::fs::read_to_string(&file).is_ok_and(|current| current == text) {
        return Ok(());
    }
    let temporary = file.with_extension("conf.tmp");
    std::fs::write(&temporary, &text)
        .and_then(|()| std::fs::rename(&temporary, &file))
        .map_err(PitrError::io(format!("writing {}", file.display())))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn the_file_names_the_cluster_and_the_repository() {
        let plan = Plan {
            database_url: "postgres://postgres@127.0.0.1:5433/brigade".into(),
            pg_data: PathBuf::from("/srv/pg/data"),
            repo: PathBuf::from("/mnt/backup/repo"),
            stanza: "brigade".into(),
            retention_full: 3,
            archive_timeout_secs: 60,
            socket_dir: PathBuf::from("/run/postgresql"),
            port: 5433,
            pg_user: "postgres".into(),
            program: PathBuf::from("pgbackrest"),
            pg_bin_dir: None,
            scratch_dir: PathBuf::from("/tmp"),
        };
        let text = render(&plan);
        for line in [
            "repo1-path=/mnt/backup/repo\n",
            "repo1-retention-full=3\n",
            "lock-path=/mnt/backup/repo/lock\n",
            "[brigade]\npg1-path=/srv/pg/data\npg1-port=5433\npg1-socket-path=/run/postgresql\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
    }
}
