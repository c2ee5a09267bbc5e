"""Audit real TCP connections against firewall rules.

``policy`` is the model of groups and rules, ``policyfile`` and ``terraform``
load it from TOML or from Terraform's ``aws_security_group`` resources,
``classifier`` sorts connection records into audit classes, ``detect`` finds
SYN scans and SYN floods, and ``report`` renders the result.
"""
