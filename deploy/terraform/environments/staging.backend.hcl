bucket         = "brigade-terraform-state"
key            = "staging/terraform.tfstate"
region         = "eu-central-1"
dynamodb_table = "brigade-terraform-locks"
encrypt        = true
