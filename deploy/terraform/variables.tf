variable "environment" {
  description = "staging or production; part of every name."
  type        = string
  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "environment must be staging or production."
  }
}

variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-central-1"
}

variable "availability_zones" {
  description = "Three zones: one public, one private and one database subnet each."
  type        = list(string)
  default     = ["eu-central-1a", "eu-central-1b", "eu-central-1c"]
}

variable "vpc_cidr" {
  description = "The VPC's range; deploy/k8s's NetworkPolicy allows PostgreSQL and Redis inside it."
  type        = string
  default     = "10.0.0.0/16"
}

variable "cluster_endpoint_public_cidrs" {
  description = "CIDR blocks that may reach the EKS API from outside the VPC (deploy runners, operators' VPN); empty: private endpoint only."
  type        = list(string)
  validation {
    condition     = !contains(var.cluster_endpoint_public_cidrs, "0.0.0.0/0")
    error_message = "cluster_endpoint_public_cidrs must not open the API to the whole internet (0.0.0.0/0)."
  }
}

variable "flow_log_retention_days" {
  description = "CloudWatch retention of the VPC flow logs."
  type        = number
  default     = 90
}

variable "kubernetes_version" {
  description = "EKS control-plane version."
  type        = string
  default     = "1.33"
}

variable "node_instance_types" {
  description = "Instance types of the managed node group running the replicas."
  type        = list(string)
  default     = ["t3.large"]
}

variable "node_min_size" {
  description = "Fewest nodes (the HPA's minReplicas must fit)."
  type        = number
  default     = 3
}

variable "node_max_size" {
  description = "Most nodes."
  type        = number
  default     = 6
}

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_allocated_storage_gb" {
  description = "Initial storage; grows up to 5x on its own."
  type        = number
  default     = 50
}

variable "db_multi_az" {
  description = "A standby in a second zone (production)."
  type        = bool
  default     = false
}

variable "db_backup_retention_days" {
  description = "Automated RDS backups (point-in-time recovery) kept this long."
  type        = number
  default     = 7
}

variable "deletion_protection" {
  description = "Refuse to delete the database (production)."
  type        = bool
  default     = true
}

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.t4g.small"
}

variable "redis_replicas" {
  description = "Read replicas besides the primary; 1 or more turns on automatic failover."
  type        = number
  default     = 1
}

variable "backup_retention_days" {
  description = "Nightly pg_dump files in S3 are deleted after this many days."
  type        = number
  default     = 30
}

variable "log_retention_days" {
  description = "CloudWatch retention of brigade's JSON logs."
  type        = number
  default     = 30
}

variable "deploy_role_arn" {
  description = "IAM role the deploy workflow assumes (GitHub OIDC); may edit the brigade namespace only."
  type        = string
}

variable "pitr_retention_days" {
  description = "Point-in-time window of the pgBackRest repository (PGBACKREST_REPO1_RETENTION_FULL); versions it deleted are kept this long too."
  type        = number
  default     = 14
}

variable "db_read_replica" {
  description = "Create an RDS read replica of the database (DATABASE_READ_URL)."
  type        = bool
  default     = false
}
