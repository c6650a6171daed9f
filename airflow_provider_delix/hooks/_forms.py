"""The ``delix`` connection form for Airflow < 3.2, read from the provider info's declarations.

Airflow 3.2+ builds the form from ``get_provider_info`` without importing the hook; older
versions call the hook's ``get_ui_field_behaviour``/``get_connection_form_widgets``, which
return these, built from the same constants, so the two forms can never disagree. Flask and
WTForms are imported only when the webserver asks.
"""

from __future__ import annotations

from typing import Any


def ui_field_behaviour() -> dict[str, Any]:
    """Connection form on Airflow < 3.2 (3.2+ reads ``ui-field-behaviour`` from provider info)."""
    from airflow_provider_delix.get_provider_info import UI_FIELD_BEHAVIOUR

    return {
        "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
        "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
        "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
    }


def connection_form_widgets() -> dict[str, Any]:
    """Typed extras on Airflow < 3.2 (3.2+ reads ``conn-fields`` from provider info)."""
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import BooleanField, IntegerField, StringField
    from wtforms.validators import NumberRange, Optional

    from airflow_provider_delix.get_provider_info import CONN_FIELDS

    fields: dict[str, Any] = {}
    for name, spec in CONN_FIELDS.items():
        label, kind = lazy_gettext(spec["label"]), spec["schema"]["type"][0]
        if kind == "boolean":
            fields[name] = BooleanField(label, description=spec["description"])
        elif kind == "string":
            fields[name] = StringField(label, widget=BS3TextFieldWidget(), description=spec["description"])
        else:
            fields[name] = IntegerField(
                label,
                widget=BS3TextFieldWidget(),
                # The same floor as the 3.2+ form's schema (timeouts and pool size start at 1).
                validators=[Optional(), NumberRange(min=spec["schema"].get("minimum", 0))],
                description=spec["description"],
            )
    return fields
