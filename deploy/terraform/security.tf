# Only the EKS nodes and pods (the cluster security group) reach PostgreSQL :5432 and
# Redis :6379; nothing else opens a port.
resource "aws_security_group" "database" {
  name        = "${local.name}-database"
  description = "PostgreSQL for brigade"
  vpc_id      = aws_vpc.main.id
}

resource "aws_vpc_security_group_ingress_rule" "database_from_cluster" {
  security_group_id            = aws_security_group.database.id
  referenced_security_group_id = aws_eks_cluster.main.vpc_config[0].cluster_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  description                  = "brigade replicas, migrate Job, backup CronJob"
}

resource "aws_security_group" "redis" {
  name        = "${local.name}-redis"
  description = "Redis for brigade"
  vpc_id      = aws_vpc.main.id
}

resource "aws_vpc_security_group_ingress_rule" "redis_from_cluster" {
  security_group_id            = aws_security_group.redis.id
  referenced_security_group_id = aws_eks_cluster.main.vpc_config[0].cluster_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
  description                  = "brigade replicas"
}
