"""Errors of the churn/CLV part (a failed fit fails its job with this message)."""

from crm_common.errors import UnprocessableEntity


class FitFailed(UnprocessableEntity):
    """The models could not be fitted: too little data or no convergence; the previous fit
    stays in use."""

    slug = "clv-fit-failed"
    title = "BG/NBD / Gamma-Gamma fit failed"
