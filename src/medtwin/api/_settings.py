"""The service's settings, read from the environment once at start-up.

=========================  ===========================================================  ==========
variable                   meaning                                                      default
=========================  ===========================================================  ==========
``MEDTWIN_HOME``           folder of the embedded store, key file and logs              ``./medtwin-data``
``MEDTWIN_DATABASE_URL``   SQLAlchemy URL (``postgresql+pg8000://user@host/db``)        SQLite in home
``MEDTWIN_KEY_FILE``       32-byte master key (encryption, tokens, audit chain)         home/medtwin.key
``MEDTWIN_MQTT_URL``       broker for device streams (``mqtt://127.0.0.1:1883``)        none
``MEDTWIN_TOKEN_TTL_S``    lifetime of an access token                                  3600
``MEDTWIN_HOSPITAL``       hospital spec of the hospital twin (YAML/JSON path or a      none
                           bundled name such as ``example_hospital``)
``MEDTWIN_MLLP_PORT``      port of the HL7 v2 MLLP listener for ADT feeds               none
``MEDTWIN_MLLP_HOST``      interface the MLLP listener binds                            127.0.0.1
=========================  ===========================================================  ==========
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from medtwin.errors import ConfigurationError

__all__ = ["MqttAddress", "Settings"]


@dataclass(frozen=True, slots=True)
class MqttAddress:
    """Where the MQTT broker listens (``mqtt://[user[:password]@]host[:port]``)."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> MqttAddress:
        """Parse ``mqtt://host:port``; other schemes are a :class:`ConfigurationError`."""
        parsed = urlparse(url)
        if parsed.scheme not in ("mqtt", "tcp") or not parsed.hostname:
            raise ConfigurationError(
                f"MEDTWIN_MQTT_URL must look like mqtt://host:1883, got {url!r}"
            )
        return cls(parsed.hostname, parsed.port or 1883, parsed.username, parsed.password)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service needs to start (see the module docstring)."""

    home: Path = Path("medtwin-data")
    database_url: str | None = None
    key_file: Path | None = None
    mqtt: MqttAddress | None = None
    token_ttl_s: int = 3600
    n_members: int = 200
    alert_threshold: float = 0.3
    alert_window_min: float = 30.0
    save_every: int = 12
    workers: int = 1
    hospital: str | None = None
    mllp_port: int | None = None
    mllp_host: str = "127.0.0.1"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Settings from ``MEDTWIN_*`` variables; keyword arguments win over the environment."""
        env = os.environ
        values: dict[str, object] = {"home": Path(env.get("MEDTWIN_HOME", "medtwin-data"))}
        if env.get("MEDTWIN_DATABASE_URL"):
            values["database_url"] = env["MEDTWIN_DATABASE_URL"]
        if env.get("MEDTWIN_KEY_FILE"):
            values["key_file"] = Path(env["MEDTWIN_KEY_FILE"])
        if env.get("MEDTWIN_MQTT_URL"):
            values["mqtt"] = MqttAddress.parse(env["MEDTWIN_MQTT_URL"])
        if env.get("MEDTWIN_TOKEN_TTL_S"):
            try:
                values["token_ttl_s"] = int(env["MEDTWIN_TOKEN_TTL_S"])
            except ValueError:
                raise ConfigurationError(
                    f"MEDTWIN_TOKEN_TTL_S must be whole seconds, got {env['MEDTWIN_TOKEN_TTL_S']!r}"
                ) from None
        if env.get("MEDTWIN_HOSPITAL"):
            values["hospital"] = env["MEDTWIN_HOSPITAL"]
        if env.get("MEDTWIN_MLLP_HOST"):
            values["mllp_host"] = env["MEDTWIN_MLLP_HOST"]
        if env.get("MEDTWIN_MLLP_PORT"):
            try:
                values["mllp_port"] = int(env["MEDTWIN_MLLP_PORT"])
            except ValueError:
                raise ConfigurationError(
                    f"MEDTWIN_MLLP_PORT must be a port number, got {env['MEDTWIN_MLLP_PORT']!r}"
                ) from None
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    @property
    def key_path(self) -> Path:
        """The master key file: ``MEDTWIN_KEY_FILE`` or ``medtwin.key`` in the home folder."""
        return self.key_file if self.key_file is not None else self.home / "medtwin.key"
