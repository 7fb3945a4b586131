bucket         = "brigade-terraform-state"
key            = "production/terraform.tfstate"
region         = "eu-central-1"
dynamodb_table = "brigade-terraform-locks"
encrypt        = true
