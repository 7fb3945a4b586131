# Recovery beyond RDS's own backups: the S3 bucket that holds a pgBackRest repository (WAL archive
# and base backups) for a PostgreSQL run outside RDS, the IAM role the pgBackRest CronJob
# (deploy/k8s/components/pgbackrest) assumes to write it, and an optional RDS read replica.

# pgBackRest expires backups and WAL itself by its time window (repo1-retention-full-type=time):
# deleting objects behind its back would break the backups it still counts on, so the lifecycle
# never expires current objects. Versioning keeps what pgBackRest (or anyone) deleted or
# overwrote for pitr_retention_days more, then the lifecycle removes it.
resource "aws_s3_bucket" "wal_archive" {
  bucket = "${local.name}-wal-archive-${data.aws_caller_identity.current.account_id}"
}

resource "aws_s3_bucket_versioning" "wal_archive" {
  bucket = aws_s3_bucket.wal_archive.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "wal_archive" {
  bucket = aws_s3_bucket.wal_archive.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.main.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "wal_archive" {
  bucket                  = aws_s3_bucket.wal_archive.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "wal_archive" {
  bucket = aws_s3_bucket.wal_archive.id
  rule {
    id     = "expire-deleted-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.pitr_retention_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

# Only TLS: pgBackRest always speaks HTTPS to S3; anything else is refused.
data "aws_iam_policy_document" "wal_archive_tls_only" {
  statement {
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.wal_archive.arn, "${aws_s3_bucket.wal_archive.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "wal_archive" {
  bucket = aws_s3_bucket.wal_archive.id
  policy = data.aws_iam_policy_document.wal_archive_tls_only.json
}

# IRSA for the ServiceAccount brigade-pgbackrest of the environment's namespace.
data "aws_iam_policy_document" "pgbackrest_assume" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.eks.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${replace(aws_iam_openid_connect_provider.eks.url, "https://", "")}:sub"
      values   = ["system:serviceaccount:brigade-${var.environment}:brigade-pgbackrest"]
    }
  }
}

resource "aws_iam_role" "pgbackrest" {
  name               = "${local.name}-pgbackrest"
  assume_role_policy = data.aws_iam_policy_document.pgbackrest_assume.json
}

# pgBackRest lists, reads, writes and (expiring) deletes in its repository; nothing else.
data "aws_iam_policy_document" "pgbackrest" {
  statement {
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [aws_s3_bucket.wal_archive.arn]
  }
  statement {
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.wal_archive.arn}/*"]
  }
  statement {
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.main.arn]
  }
}

resource "aws_iam_role_policy" "pgbackrest" {
  name   = "wal-archive"
  role   = aws_iam_role.pgbackrest.id
  policy = data.aws_iam_policy_document.pgbackrest.json
}

# A streaming read replica for brigade's stale-tolerant reads (DATABASE_READ_URL in
# brigade-secrets; docs/operations.md, "Read replicas and failover"). It inherits the source's
# database, user, subnet group and encryption key. No automated backups of its own: the source
# has them; turn them on when promoting it.
resource "aws_db_instance" "replica" {
  count                           = var.db_read_replica ? 1 : 0
  identifier                      = "${local.name}-replica"
  replicate_source_db             = aws_db_instance.main.identifier
  instance_class                  = var.db_instance_class
  storage_type                    = "gp3"
  storage_encrypted               = true
  kms_key_id                      = aws_kms_key.main.arn
  parameter_group_name            = aws_db_parameter_group.main.name
  vpc_security_group_ids          = [aws_security_group.database.id]
  multi_az                        = false
  publicly_accessible             = false
  backup_retention_period         = 0
  skip_final_snapshot             = true
  deletion_protection             = var.deletion_protection
  auto_minor_version_upgrade      = true
  performance_insights_enabled    = true
  performance_insights_kms_key_id = aws_kms_key.main.arn
  enabled_cloudwatch_logs_exports = ["postgresql"]
}
