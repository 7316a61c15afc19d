"""Detection rules: the condition language, the field catalogue, scopes and rule files.

``load_rules`` reads and validates YAML rule files into a :class:`RuleSet`;
each :class:`Rule` evaluates over a batch of records as numpy columns
(``batch_columns`` builds the lazy view the rules read).  Rate control
(thresholds, suppression) is applied by the alert router on top.
"""

from sensor.rules.condition import Condition, RuleError, RuleErrors, parse_condition
from sensor.rules.fields import (
    ALIASES, FIELDS, BatchView, Field, MissingFieldError, address_column, address_parts, batch_columns,
)
from sensor.rules.ruleset import Rule, RuleSet, Suppress, Threshold, check_rules, load_rules
from sensor.rules.scope import AddressSet, Network, PortSet, Scope, parse_network

__all__ = [
    "ALIASES", "FIELDS", "AddressSet", "BatchView", "Condition", "Field", "MissingFieldError", "Network",
    "PortSet", "Rule", "RuleError", "RuleErrors", "RuleSet", "Scope", "Suppress", "Threshold",
    "address_column", "address_parts", "batch_columns", "check_rules", "load_rules", "parse_condition",
    "parse_network",
]
