"""The dashboard: static pages and a small vanilla-JavaScript front end, served by the API.

Pages are shells without data (no PHI is ever rendered on the server); the browser logs in at
``/auth/token``, keeps the bearer token in ``sessionStorage`` and asks the API for everything it
shows, live over ``/ws/ward`` and ``/ws/patients/{id}``.  plotly.js comes from the installed
plotly package, so the dashboard works offline.

======================  =====================================================================
page                    what it shows
======================  =====================================================================
``/``                   log in
``/ward``               every patient the user may see: glucose, trend, time in range, risks,
                        active alerts; live
``/patients/{id}``      CGM with the twin's forecast fan, events, risk gauges, alerts (live),
                        what-if comparison of candidate actions
``/hospital``           the hospital twin: census per unit against beds (live), the forecast
                        fan chart per unit for 24/48/72 h, what-if scenarios (counts only)
``/audit``              the audit log and the state of its hash chain (admins)
======================  =====================================================================
"""

from __future__ import annotations

from medtwin.web._dashboard import CONTENT_SECURITY_POLICY, mount_dashboard

__all__ = ["CONTENT_SECURITY_POLICY", "mount_dashboard"]
