"""Closed-form queueing results the flow model is checked against.

The M/M/c queue (Poisson arrivals at rate ``lambda``, ``c`` servers with exponential service at
rate ``mu``, FIFO, ``rho = lambda / (c mu) < 1``), Gross, Shortle, Thompson & Harris,
*Fundamentals of Queueing Theory*, 4th ed. (2008), §2.3.  With offered load ``a = lambda/mu``:

    p0 = [ sum_{n<c} a^n/n!  +  a^c / (c! (1 - rho)) ]^-1
    C(c, a) = P(wait > 0) = a^c / (c! (1 - rho)) * p0              (Erlang's C formula)
    Wq = C(c, a) / (c mu - lambda),   Lq = lambda Wq,   W = Wq + 1/mu,   L = lambda W

(the last two are Little's law, L = lambda W).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ErlangC", "erlang_c"]


@dataclass(frozen=True, slots=True)
class ErlangC:
    """Steady-state M/M/c measures; times in the unit of ``1/mu``."""

    servers: int
    arrival_rate: float
    service_rate: float
    utilisation: float
    p_wait: float
    wq: float
    lq: float
    w: float
    l: float  # noqa: E741  (L, as the textbooks write it)


def erlang_c(servers: int, arrival_rate: float, service_rate: float) -> ErlangC:
    """M/M/c waiting probability and mean waits from Erlang's C formula.

    >>> r = erlang_c(5, 4.25, 1.0)
    >>> round(r.p_wait, 4), round(r.wq, 4)
    (0.6545, 0.8726)
    """
    c = int(servers)
    if c < 1 or arrival_rate <= 0 or service_rate <= 0:
        raise ValueError("need servers >= 1 and positive arrival and service rates")
    a = arrival_rate / service_rate
    rho = a / c
    if rho >= 1:
        raise ValueError(f"unstable queue: rho = {rho:g} >= 1")
    # terms a^n/n! computed iteratively (no overflow for large c)
    term, head = 1.0, 0.0
    for n in range(c):
        head += term
        term *= a / (n + 1)
    tail = term / (1 - rho)  # a^c / (c! (1 - rho))
    p_wait = tail / (head + tail)
    wq = p_wait / (c * service_rate - arrival_rate)
    w = wq + 1 / service_rate
    return ErlangC(
        c, arrival_rate, service_rate, rho, p_wait, wq, arrival_rate * wq, w, arrival_rate * w
    )
