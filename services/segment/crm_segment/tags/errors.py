"""Errors of the tag rules API."""

from crm_common.errors import Conflict, NotFound


class TagRuleNotFound(NotFound):
    """No (live) tag rule for that tag."""

    slug = "tag-rule-not-found"
    title = "Tag rule not found"


class TagRuleNameTaken(Conflict):
    """Another segment already has the name the tag rule's segment would take."""

    slug = "tag-rule-name-taken"
    title = "A segment already has this tag rule's name"
