"""Active ISO 4217 currency codes (the list as amended through 2025).

A compact copy rather than a dependency: the list changes a few times a decade. Fund and
special codes (``BOV``, ``CLF``, ``XAU``, ``XDR``, ``XTS``, ``XXX``, ...) are left out because no
shop charges a customer in them; withdrawn codes (``HRK``, ``SLL``, ``ANG``, ``ZWL``) are out too.
"""

from __future__ import annotations

ISO_4217: frozenset[str] = frozenset(
    """
    AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP
    GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES
    KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU
    MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON
    RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND
    TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR
    ZMW ZWG
    """.split()
)


def check_currency(value: str) -> str:
    """An active ISO 4217 code in upper case (``EUR``); raises ``ValueError`` otherwise."""
    if value not in ISO_4217:
        hint = f" (codes are upper case: {value.upper()})" if value.upper() in ISO_4217 else ""
        raise ValueError(f"not an active ISO 4217 currency code{hint}")
    return value
