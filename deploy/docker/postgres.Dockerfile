# PostgreSQL with pgBackRest for deploy/compose.yaml: the server ships every WAL segment with
# `pgbackrest archive-push` (archive_command) and the pg-backup job takes base backups, both into
# the MinIO bucket named in deploy/compose/pgbackrest.conf. Debian rather than the alpine image
# because pgBackRest is packaged there: the image's PGDG apt source carries the current release.
# openssl makes MinIO's certificate (pgBackRest speaks S3 over TLS only).
#
#   docker build -f deploy/docker/postgres.Dockerfile -t brigade-postgres:local deploy/docker
FROM postgres:16.9-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends pgbackrest openssl \
    && rm -rf /var/lib/apt/lists/* \
    && pgbackrest version \
    && install -d -o postgres -g postgres -m 0750 /var/log/pgbackrest /var/spool/pgbackrest /tmp/pgbackrest
