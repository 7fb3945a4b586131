output "cluster_name" {
  description = "EKS cluster; the deploy workflow's EKS_CLUSTER variable."
  value       = aws_eks_cluster.main.name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = aws_eks_cluster.main.endpoint
}

output "database_endpoint" {
  description = "host:port for DATABASE_URL (postgres://brigade:PASSWORD@HOST:PORT/brigade?sslmode=require)."
  value       = aws_db_instance.main.endpoint
}

output "database_password_secret_arn" {
  description = "Secrets Manager secret holding the master password (RDS manages and rotates it)."
  value       = aws_db_instance.main.master_user_secret[0].secret_arn
}

output "redis_auth_secret_arn" {
  description = "Secrets Manager secret holding the Redis AUTH token (REDIS_URL rediss://:TOKEN@HOST:6379)."
  value       = aws_secretsmanager_secret.redis_auth.arn
}

output "redis_endpoint" {
  description = "Primary endpoint for REDIS_URL (rediss://:TOKEN@HOST:6379, TOKEN from redis_auth_secret_arn)."
  value       = aws_elasticache_replication_group.main.primary_endpoint_address
}

output "backup_bucket" {
  description = "BACKUP_BUCKET of the backup CronJob (deploy/k8s/overlays/*/patch-backup.yaml)."
  value       = aws_s3_bucket.backups.bucket
}

output "backup_role_arn" {
  description = "eks.amazonaws.com/role-arn of the brigade-backup ServiceAccount."
  value       = aws_iam_role.backup.arn
}

output "application_log_group" {
  description = "CloudWatch log group of brigade's JSON logs."
  value       = aws_cloudwatch_log_group.application.name
}

output "wal_archive_bucket" {
  description = "PGBACKREST_REPO1_S3_BUCKET of brigade-pgbackrest-target (deploy/k8s/components/pgbackrest)."
  value       = aws_s3_bucket.wal_archive.bucket
}

output "pgbackrest_role_arn" {
  description = "eks.amazonaws.com/role-arn of the brigade-pgbackrest ServiceAccount."
  value       = aws_iam_role.pgbackrest.arn
}

output "database_read_replica_endpoint" {
  description = "host:port for DATABASE_READ_URL when db_read_replica is on; null otherwise."
  value       = one(aws_db_instance.replica[*].endpoint)
}
