//! `brigade certificate`: the self-signed pair a TLS balancer serves where nobody has put a
//! real certificate yet (deploy/compose.yaml runs it once before `brigade balance`).

use anyhow::Context;
use brigade_balance::tls::keep_or_make_self_signed;

use crate::cli::CertificateArgs;

/// Keeps the usable pair in `--dir` or makes a self-signed one, and says which.
pub fn run(args: &CertificateArgs) -> anyhow::Result<()> {
    let (cert, key, made) = keep_or_make_self_signed(&args.dir, &args.names)
        .with_context(|| format!("--dir {}", args.dir.display()))?;
    if made {
        println!(
            "made a self-signed certificate for {}: {} (key {})",
            args.names.join(", "),
            cert.display(),
            key.display()
        );
    } else {
        println!(
            "kept the certificate that loads: {} (key {})",
            cert.display(),
            key.display()
        );
    }
    Ok(())
}
