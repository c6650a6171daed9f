"""The provider registers with Airflow the way official providers do."""

from __future__ import annotations

import json
from importlib import metadata, resources

import jsonschema
import pytest

from airflow_provider_delix.get_provider_info import get_provider_info


def test_provider_info_validates_against_airflows_own_schema() -> None:
    schema = json.loads((resources.files("airflow") / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_package_name_is_the_distribution_and_the_entry_point_resolves() -> None:
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-delix"
    assert metadata.version(info["package-name"]) in info["versions"]
    entry_points = metadata.entry_points(group="apache_airflow_provider")
    ours = [ep for ep in entry_points if ep.dist is not None and ep.dist.name == info["package-name"]]
    assert len(ours) == 1
    assert ours[0].load()() == info


def test_every_declared_module_and_hook_class_imports() -> None:
    import importlib

    info = get_provider_info()
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for conn in info["connection-types"]:
        module, _, cls = conn["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), cls)
        assert hook.conn_type == conn["connection-type"]
        assert hook.hook_name == conn["hook-name"]


def test_connection_form_hides_unused_fields_and_labels_the_key() -> None:
    from airflow_provider_delix.hooks.delix import DelixHook

    behaviour = DelixHook.get_ui_field_behaviour()
    assert behaviour["relabeling"]["password"] == "API key"
    assert "login" in behaviour["hidden_fields"]
    assert behaviour["placeholders"]["host"] == "https://api.delix.ir/v1"
    conn = get_provider_info()["connection-types"][0]
    for field in conn["conn-fields"].values():
        assert field["schema"]["type"][0] in {"integer", "number", "string", "boolean"}


def test_airflow_providers_list_shows_the_provider(tmp_path: object) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["AIRFLOW_HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "--output", "plain"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "airflow-provider-delix" in result.stdout


def test_the_older_form_refuses_what_the_3_2_form_refuses() -> None:
    """Airflow < 3.2 builds the form from the hook (WTForms); its number floors must be the
    provider info's, or a 0 timeout passes the form and fails only at run time."""
    pytest.importorskip("flask_appbuilder")  # the Airflow 2.11 lane; 3.x builds it from provider info
    from wtforms.validators import NumberRange

    from airflow_provider_delix.hooks.delix import DelixHook

    widgets = DelixHook.get_connection_form_widgets()
    fields = get_provider_info()["connection-types"][0]["conn-fields"]
    for name, spec in fields.items():
        if spec["schema"]["type"][0] != "integer":
            continue
        (floor,) = [v.min for v in widgets[name].kwargs["validators"] if isinstance(v, NumberRange)]
        assert floor == spec["schema"].get("minimum", 0), name
