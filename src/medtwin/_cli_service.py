"""``medtwin serve``, ``keygen``, ``user``, ``device``, ``audit``: running and administering the service.

The service's modules (FastAPI, SQLAlchemy, uvicorn) are imported inside the commands so the
science commands stay quick to start.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from medtwin.errors import ConfigurationError

__all__ = ["audit_app", "device_app", "register", "user_app"]

user_app = typer.Typer(name="user", help="Accounts of the service.", no_args_is_help=True)
device_app = typer.Typer(name="device", help="Devices that stream readings.", no_args_is_help=True)
audit_app = typer.Typer(name="audit", help="The hash-chained audit log.", no_args_is_help=True)

ROLES = ("admin", "clinician", "researcher", "interface")


def _service(create_key: bool = False) -> Any:
    from medtwin.api import Service, Settings

    return Service.open(Settings.from_env(), create_key=create_key)


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo/--no-demo",
            help="Stream a dozen virtual patients in accelerated time and an ADT feed of the "
            "example hospital (what `make run` shows).",
        ),
    ] = False,
    demo_patients: Annotated[int, typer.Option(min=1, max=100)] = 12,
    speed: Annotated[
        float, typer.Option(min=1.0, help="Demo time runs this many times the wall clock.")
    ] = 60.0,
    workers: Annotated[int, typer.Option(min=1, max=16, help="Twin-update threads.")] = 1,
    hospital: Annotated[
        str | None,
        typer.Option(
            help="Host the hospital twin of this spec (YAML/JSON, or a bundled name such as "
            "example_hospital; default MEDTWIN_HOSPITAL; --demo uses example_hospital)."
        ),
    ] = None,
    mllp_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Listen for HL7 v2 ADT over MLLP on this port (needs a hospital).",
        ),
    ] = None,
    mllp_host: Annotated[
        str | None, typer.Option(help="Interface of the MLLP listener (default 127.0.0.1).")
    ] = None,
) -> None:
    """Start the medtwin service: API, dashboard, hosted twins, live ingestion.

    Embedded by default (SQLite and a key file in MEDTWIN_HOME, ./medtwin-data); production sets
    MEDTWIN_DATABASE_URL (PostgreSQL), MEDTWIN_KEY_FILE and MEDTWIN_MQTT_URL.  On first start it
    creates an admin account and prints its password once.
    """
    import uvicorn

    from medtwin.api import Service, Settings, create_app
    from medtwin.api._demo import Demo
    from medtwin.api._hospital_demo import HospitalDemo
    from medtwin.api.mqtt import MqttBridge
    from medtwin.cli import _errors_to_exit

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    overrides: dict[str, Any] = {"workers": workers}
    if hospital is not None:
        overrides["hospital"] = hospital
    if mllp_port is not None:
        overrides["mllp_port"] = mllp_port
    if mllp_host is not None:
        overrides["mllp_host"] = mllp_host
    with _errors_to_exit():
        settings = Settings.from_env(**overrides)
        if demo and settings.hospital is None:
            settings = Settings.from_env(**overrides, hospital="example_hospital")
        if settings.mllp_port is not None and settings.hospital is None:
            raise ConfigurationError(
                "--mllp-port needs a hospital twin: give --hospital PATH (or MEDTWIN_HOSPITAL)"
            )
    embedded = settings.database_url is None
    with _errors_to_exit():
        service = Service.open(settings, create_key=embedded)
    password = service.bootstrap_admin()
    url = f"http://{host}:{port}/"
    where = f"SQLite in {settings.home}" if embedded else "MEDTWIN_DATABASE_URL"
    lines = [f"medtwin is starting at {url}", f"  store: {where}"]
    if service.hospital is not None:
        lines.append(f"  hospital twin: {service.hospital.spec.name} ({url}hospital)")
    if settings.mllp_port is not None:
        lines.append(f"  HL7 v2 ADT over MLLP: {settings.mllp_host}:{settings.mllp_port}")
    if password is not None:
        lines += [
            "  first start: an admin account was created; this password is shown only now:",
            "    username: admin",
            f"    password: {password}",
        ]
    else:
        lines.append("  log in with your account (`medtwin user add` creates one)")
    typer.echo("\n".join(lines), err=False)

    bridge: MqttBridge | None = None
    demo_run: Demo | None = None
    hospital_demo: HospitalDemo | None = None

    def started(svc: Any) -> None:
        nonlocal bridge, demo_run, hospital_demo
        if settings.mqtt is not None:
            bridge = MqttBridge(
                settings.mqtt,
                svc.ingest_device_messages,
                on_refused=lambda dev, why: svc.store.audit(
                    f"device:{dev}", "device", "mqtt message", f"Device/{dev}", "denied", detail=why
                ),
            )
            bridge.start()
        if demo:
            demo_run = Demo(svc, n_patients=demo_patients, speed=speed)
            ids = demo_run.setup()
            demo_run.start()
            # the patients' twins first: the hospital's backlog waits until they are live
            hospital_demo = HospitalDemo(
                svc, after=lambda: all(svc.host.latest(p) is not None for p in ids)
            )
            hospital_demo.start()
            typer.echo(f"  demo: {demo_patients} virtual patients streaming at {speed:g}x, and "
                       f"the hospital's ADT feed; open {url} and log in")  # fmt: skip

    def stopping(svc: Any) -> None:
        if hospital_demo is not None:
            hospital_demo.stop()
        if demo_run is not None:
            demo_run.stop()
        if bridge is not None:
            bridge.stop()

    app = create_app(service, on_startup=started, on_shutdown=stopping)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def keygen(
    path: Annotated[Path, typer.Argument(help="Where to write the new key (mode 0600).")],
) -> None:
    """Create a master key file (encryption, tokens, audit chain); keep it out of DB backups."""
    from medtwin.security import Keyring

    Keyring.create_file(path)
    typer.echo(f"wrote a new key to {path}; set MEDTWIN_KEY_FILE={path}")


@user_app.command("add")
def user_add(
    username: str,
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")] = "clinician",
    patient: Annotated[
        list[str] | None,
        typer.Option("--patient", help="Put a clinician on this patient's care team."),
    ] = None,
) -> None:
    """Create an account with a generated password (printed once)."""
    from medtwin.security import Role, generate_password

    if role not in ROLES:
        raise ConfigurationError(f"role must be one of {ROLES}, got {role!r}")
    service = _service()
    password = generate_password()
    user_id = service.store.create_user(username, password, Role(role))
    for pid in patient or []:
        service.store.assign_clinician(pid, user_id)
    service.store.audit("cli", "admin", "create user", f"User/{username}", "granted")
    typer.echo(f"created {role} {username!r}; password (shown once): {password}")


@device_app.command("add")
def device_add(
    device_id: str,
    patient: Annotated[str, typer.Option(help="The patient the device measures.")],
    kind: Annotated[str, typer.Option(help="cgm, pump, watch, ...")] = "cgm",
) -> None:
    """Register a device and print its token and Nightscout upload secret."""
    from medtwin.api.routers.nightscout import nightscout_secret
    from medtwin.records import DeviceRecord

    service = _service()
    service.store.add_device(DeviceRecord(device_id, patient, kind))
    service.store.audit("cli", "admin", "create device", f"Device/{device_id}", "granted",
                        patient_id=patient)  # fmt: skip
    typer.echo(f"device token (MQTT, HTTP): {service.device_token(device_id)}")
    typer.echo(f"nightscout: URL .../nightscout/{device_id}/ with API secret "
               f"{nightscout_secret(service.keyring.token_key, device_id)}")  # fmt: skip


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the audit log's hash chain; exit status 1 when an entry was edited or removed."""
    service = _service()
    report = service.store.verify_audit()
    if report.ok:
        typer.echo(f"audit chain verifies: {report.n_entries} entries")
        return
    typer.echo(f"AUDIT CHAIN BROKEN at entry {report.first_bad_seq}: {report.reason}", err=True)
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the service's commands to the ``medtwin`` command."""
    app.command()(serve)
    app.command()(keygen)
    app.add_typer(user_app, name="user")
    app.add_typer(device_app, name="device")
    app.add_typer(audit_app, name="audit")
