"""Errors of the identity API: linking anonymous ids, merging and un-merging customers."""

from crm_common.errors import Conflict, NotFound


class AnonymousIdTaken(Conflict):
    """The anonymous id already belongs to another customer."""

    slug = "anonymous-id-taken"
    title = "Anonymous id linked to another customer"


class MergeIntoSelf(Conflict):
    """A customer cannot be merged into itself."""

    slug = "merge-into-self"
    title = "Cannot merge a customer into itself"


class MergeLoop(Conflict):
    """The survivor already belongs to the duplicate's merge group."""

    slug = "merge-loop"
    title = "Merge would create a loop"


class AlreadyMerged(Conflict):
    """The duplicate was already merged into a customer."""

    slug = "already-merged"
    title = "Customer already merged"


class MergeNotFound(NotFound):
    """No merge with that id."""

    slug = "merge-not-found"
    title = "Merge not found"


class MergeAlreadyUndone(Conflict):
    """The merge was undone before."""

    slug = "merge-already-undone"
    title = "Merge already undone"


class MergeNotUndoable(Conflict):
    """The customers of the merge were erased since; there is nothing to restore."""

    slug = "merge-not-undoable"
    title = "Merge cannot be undone"
