# Three tiers: the load balancer accepts HTTPS from anywhere, the app servers
# accept HTTP from the load balancer only, and the database accepts MySQL from
# the app servers only.

variable "vpc_id" {
  type = string
}

resource "aws_security_group" "lb" {
  name        = "lb"
  description = "Public load balancer"
  vpc_id      = var.vpc_id

  ingress {
    description      = "HTTPS from anywhere"
    from_port        = 443
    to_port          = 443
    protocol         = "tcp"
    cidr_blocks      = ["0.0.0.0/0"]
    ipv6_cidr_blocks = ["::/0"]
  }

  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_security_group" "app" {
  name   = "app"
  vpc_id = var.vpc_id

  ingress {
    description     = "HTTP from the load balancer"
    from_port       = 80
    to_port         = 80
    protocol        = "tcp"
    security_groups = [aws_security_group.lb.id]
  }

  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_security_group" "db" {
  name   = "db"
  vpc_id = var.vpc_id

  ingress {
    description     = "MySQL from the app servers"
    from_port       = 3306
    to_port         = 3306
    protocol        = "6"
    security_groups = [aws_security_group.app.id]
  }
}
