"""BG/NBD and Gamma-Gamma in numpy/scipy: the CDNOW estimates, and the predictions' shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import special

from crm_segment.clv import bgnbd, gamma_gamma
from crm_segment.clv.lifetime_value import WEEKS_PER_MONTH, discounted_clv

CDNOW = Path(__file__).parents[2] / "data" / "cdnow"


@pytest.fixture(scope="module")
def cdnow() -> np.ndarray:
    """The 2,357 CDNOW customers: x, t_x, T (weeks), zbar (dollars)."""
    return np.genfromtxt(
        CDNOW / "cdnow_customers_summary_with_transactions.csv", delimiter=",", names=True
    )


@pytest.fixture(scope="module")
def bg_fit(cdnow: np.ndarray) -> bgnbd.BgNbdFit:
    return bgnbd.fit(cdnow["x"], cdnow["t_x"], cdnow["T"])


@pytest.fixture(scope="module")
def gg_fit(cdnow: np.ndarray) -> gamma_gamma.GammaGammaFit:
    return gamma_gamma.fit(cdnow["x"], cdnow["zbar"])


def within_1pct(value: float, published: float) -> bool:
    return abs(value - published) <= 0.01 * abs(published)


class TestCdnow:
    def test_bgnbd_recovers_the_published_estimates(self, bg_fit: bgnbd.BgNbdFit) -> None:
        published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
        fitted = bg_fit.params.as_dict()
        for name, value in published.items():
            assert within_1pct(fitted[name], value), (name, fitted[name], value)
        d = bg_fit.diagnostics
        assert d.converged
        assert d.customers == 2357
        assert d.log_likelihood == pytest.approx(-9582.4, abs=0.1)
        assert d.gradient_norm < 1e-4
        assert d.iterations > 0

    def test_the_other_summary_file_gives_the_same_fit(self, bg_fit: bgnbd.BgNbdFit) -> None:
        other = np.genfromtxt(CDNOW / "cdnow_customers_summary.csv", delimiter=",", names=True)
        fit = bgnbd.fit(other["frequency"], other["recency"], other["T"])
        for name, value in bg_fit.params.as_dict().items():
            assert fit.params.as_dict()[name] == pytest.approx(value, rel=1e-3)

    def test_gamma_gamma_recovers_the_published_estimates(
        self, gg_fit: gamma_gamma.GammaGammaFit
    ) -> None:
        published = {"p": 6.25, "q": 3.74, "gamma": 15.44}
        fitted = gg_fit.params.as_dict()
        for name, value in published.items():
            assert within_1pct(fitted[name], value), (name, fitted[name], value)
        assert gg_fit.diagnostics.customers == 946  # only x > 0 enters the fit
        assert gg_fit.diagnostics.converged

    def test_diagnostics_are_json_ready(self, bg_fit: bgnbd.BgNbdFit) -> None:
        d = bg_fit.diagnostics.as_dict()
        assert set(d) >= {
            "log_likelihood",
            "converged",
            "iterations",
            "gradient_norm",
            "message",
            "customers",
        }
        assert d["repeat_customers"] == 946


PARAMS = bgnbd.BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
GG = gamma_gamma.GammaGammaParams(p=6.25, q=3.74, gamma=15.44)


class TestPAlive:
    def test_no_repeat_purchase_is_alive(self) -> None:
        assert bgnbd.p_alive(PARAMS, [0, 0], [0, 0], [1, 100]) == pytest.approx([1.0, 1.0])

    def test_a_long_silence_lowers_it(self) -> None:
        alive = bgnbd.p_alive(PARAMS, [3, 3, 3], [10, 10, 10], [12, 30, 80])
        assert 0 < alive[2] < alive[1] < alive[0] < 1

    def test_a_recent_purchase_raises_it(self) -> None:
        alive = bgnbd.p_alive(PARAMS, [3, 3], [5, 38], [39, 39])
        assert alive[1] > alive[0]
        assert alive[1] == pytest.approx(
            1 / (1 + 0.793 / (2.426 + 2) * ((4.414 + 39) / (4.414 + 38)) ** 3.243)
        )

    def test_many_purchases_long_ago_do_not_overflow(self) -> None:
        alive = bgnbd.p_alive(PARAMS, [5000], [1], [1000])
        assert alive[0] == pytest.approx(0.0, abs=1e-12)

    def test_inconsistent_input_is_refused(self) -> None:
        with pytest.raises(ValueError, match="t_x <= T"):
            bgnbd.p_alive(PARAMS, [1], [5], [4])
        with pytest.raises(ValueError, match="same shape"):
            bgnbd.p_alive(PARAMS, [1, 2], [0], [4])


class TestExpectedPurchases:
    def test_monotone_in_t_and_zero_at_zero(self) -> None:
        ts = np.linspace(0, 200, 41)
        values = np.array(
            [bgnbd.expected_purchases(PARAMS, t, [2], [30.43], [38.86])[0] for t in ts]
        )
        assert values[0] == pytest.approx(0.0, abs=1e-12)
        assert np.all(np.diff(values) > 0)

    def test_matches_the_direct_formula(self) -> None:
        x = np.array([0.0, 1, 2, 7, 20])
        t_x = np.array([0.0, 1.71, 30.43, 35, 38])
        T = np.full(5, 38.86)
        t = 39.0
        r, alpha, a, b = PARAMS.r, PARAMS.alpha, PARAMS.a, PARAMS.b
        direct = (
            (a + b + x - 1)
            / (a - 1)
            * (
                1
                - ((alpha + T) / (alpha + T + t)) ** (r + x)
                * special.hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
            )
        )
        direct /= 1 + (x > 0) * a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x)
        assert bgnbd.expected_purchases(PARAMS, t, x, t_x, T) == pytest.approx(direct, rel=1e-9)

    def test_frequent_buyers_stay_finite(self) -> None:
        # 400 purchases in a year, the last one today: close to 100 in the next 13 weeks, less
        # the chance of dropping out after each of them; 5000 purchases must not overflow.
        values = bgnbd.expected_purchases(PARAMS, 13, [400, 5000], [52, 52], [52, 52])
        assert np.all(np.isfinite(values))
        assert 70 < values[0] < 100
        assert values[1] > values[0]

    def test_population_new_customer(self) -> None:
        # x = 0 just observed (T = 0) is the unconditional E[X(t)] of FHL eq. 7.
        r, alpha, a, b = PARAMS.r, PARAMS.alpha, PARAMS.a, PARAMS.b
        t = 39.0
        z = t / (alpha + t)
        unconditional = (
            (a + b - 1)
            / (a - 1)
            * (1 - (alpha / (alpha + t)) ** r * special.hyp2f1(r, b, a + b - 1, z))
        )
        assert bgnbd.expected_purchases(PARAMS, t, [0], [0], [0])[0] == pytest.approx(unconditional)


class TestGammaGamma:
    def test_no_repeat_purchase_gets_the_population_mean(self) -> None:
        mean = 6.25 * 15.44 / (3.74 - 1)
        assert gamma_gamma.expected_average_value(GG, [0], [0])[0] == pytest.approx(mean)

    def test_shrinks_towards_the_customers_own_mean_with_more_purchases(self) -> None:
        values = gamma_gamma.expected_average_value(GG, [1, 5, 50], [100, 100, 100])
        assert values[0] < values[1] < values[2] < 100

    def test_nothing_to_fit(self) -> None:
        with pytest.raises(ValueError, match="no customers"):
            gamma_gamma.fit([0, 0], [0, 0])
        with pytest.raises(ValueError, match="no customers"):
            bgnbd.fit([], [], [])


class TestClv:
    x, t_x, T, zbar = [0, 2, 6], [0, 30.43, 37], [38.86, 38.86, 38.86], [0, 22.35, 40]

    def test_positive(self) -> None:
        clv = discounted_clv(PARAMS, GG, self.x, self.t_x, self.T, self.zbar)
        assert np.all(clv > 0)
        assert clv[2] > clv[1]

    def test_discounting_lowers_it(self) -> None:
        plain = discounted_clv(
            PARAMS, GG, self.x, self.t_x, self.T, self.zbar, monthly_discount_rate=0
        )
        low = discounted_clv(
            PARAMS, GG, self.x, self.t_x, self.T, self.zbar, monthly_discount_rate=0.01
        )
        high = discounted_clv(
            PARAMS, GG, self.x, self.t_x, self.T, self.zbar, monthly_discount_rate=0.05
        )
        assert np.all(high < low) and np.all(low < plain)

    def test_undiscounted_is_purchases_times_spend(self) -> None:
        plain = discounted_clv(
            PARAMS, GG, self.x, self.t_x, self.T, self.zbar, monthly_discount_rate=0
        )
        purchases = bgnbd.expected_purchases(PARAMS, 12 * WEEKS_PER_MONTH, self.x, self.t_x, self.T)
        spend = gamma_gamma.expected_average_value(GG, self.x, self.zbar)
        assert plain == pytest.approx(purchases * spend)

    def test_is_the_discounted_sum_of_monthly_expected_purchases(self) -> None:
        spend = gamma_gamma.expected_average_value(GG, self.x, self.zbar)
        direct = np.zeros(3)
        previous = np.zeros(3)
        for month in range(1, 13):
            cumulative = bgnbd.expected_purchases(
                PARAMS, month * WEEKS_PER_MONTH, self.x, self.t_x, self.T
            )
            direct += (cumulative - previous) * spend / 1.01**month
            previous = cumulative
        clv = discounted_clv(
            PARAMS, GG, self.x, self.t_x, self.T, self.zbar, monthly_discount_rate=0.01
        )
        assert clv == pytest.approx(direct, rel=1e-12)

    def test_bad_arguments(self) -> None:
        with pytest.raises(ValueError, match="months"):
            discounted_clv(PARAMS, GG, self.x, self.t_x, self.T, self.zbar, months=0)
        with pytest.raises(ValueError, match="discount"):
            discounted_clv(
                PARAMS, GG, self.x, self.t_x, self.T, self.zbar, monthly_discount_rate=-0.1
            )
