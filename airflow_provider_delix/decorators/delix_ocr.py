"""TaskFlow decorators ``@task.delix_ocr`` (scans) and ``@task.delix_ocr_documents`` (PDFs).

The decorated function returns *what to OCR* -- exactly what the operator's ``images`` (or
``documents``) takes: a path, URI, glob, folder or object-storage prefix, ``ObjectStoragePath``,
or a list of those. Everything else (``output_path``, ``language``, ``engine``, budgets, ...) is
an argument of the decorator and goes to :class:`ImageExtractionOperator` or
:class:`DocumentExtractionOperator` unchanged, so it is validated when the DAG is parsed, and
the task returns the operator's XCom manifest.

Why two decorators rather than one with a ``kind`` argument: the two operators take different
arguments (``pages``, ``deferrable``, ``poll_interval`` exist only for PDFs), and Airflow's own
decorators map one name to one operator (``@task.bash``, ``@task.sql``, ``@task.docker``); a
separate name keeps each decorator's arguments exactly its operator's.

Airflow 2.11 and 3.x: ``DecoratedOperator``/``task_decorator_factory`` live in
``airflow.decorators.base`` on 2.x and ``airflow.sdk.bases.decorator`` on 3.x; the
``common.compat`` provider resolves both, as Airflow's own providers do. The operators load
pandas/pyarrow/requests only in ``execute``, so importing this module keeps DAG parsing light.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import (
    SET_DURING_EXECUTION,
    DecoratedOperator,
    context_merge,
    determine_kwargs,
    task_decorator_factory,
)

from airflow_provider_delix.operators.document_extraction import DocumentExtractionOperator
from airflow_provider_delix.operators.image_extraction import ImageExtractionOperator

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, TaskDecorator

__all__ = ["delix_ocr_documents_task", "delix_ocr_task"]


def _inputs_of(python_callable: Callable[..., Any], value: Any, field: str) -> Any:
    """The callable's result as the operator's inputs; ``None`` is a forgotten ``return``."""
    if value is None:
        raise TypeError(
            f"{getattr(python_callable, '__name__', 'the TaskFlow callable')} returned None: it must "
            f"return the operator's {field!r} (a path, URI, glob, folder/prefix, ObjectStoragePath "
            "or a list of those)."
        )
    return value


class _DelixOcrDecoratedBase(DecoratedOperator):
    """Call the user function at execution time, then run the extraction operator.

    The result is *not* rendered as a Jinja template (unlike ``@task.bash``): it is a file
    listing the DAG author may not control, where a literal ``{{`` in a file name would break
    the run; anything dynamic belongs in the function, which receives the task context. The
    other template fields (``output_path``, ``delix_conn_id``, ``pages``) are rendered as usual.

    The function is called again on every try and when a deferred document run resumes, so it
    must return the same inputs each time: resume (never paying twice for a page) matches the
    journal of earlier tries by source.
    """

    inputs_field: str  # "images" or "documents": the operator's, through the MRO

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # A placeholder until execute: the operator requires the argument, the function gives it.
        kwargs[self.inputs_field] = SET_DURING_EXECUTION
        super().__init__(python_callable=python_callable, op_args=op_args, op_kwargs=op_kwargs, **kwargs)

    def execute(self, context: Context) -> Any:
        context_merge(context, self.op_kwargs)
        kwargs = determine_kwargs(self.python_callable, self.op_args, context)
        value = self.python_callable(*self.op_args, **kwargs)
        setattr(self, self.inputs_field, _inputs_of(self.python_callable, value, self.inputs_field))
        # DecoratedOperator.execute: the operator's execute, then the multiple_outputs handling.
        return super().execute(context)


def _template_fields(operator: type[Any], inputs_field: str) -> tuple[str, ...]:
    fields = (*DecoratedOperator.template_fields, *operator.template_fields)
    return tuple(name for name in fields if name != inputs_field)


class _DelixOcrDecoratedOperator(_DelixOcrDecoratedBase, ImageExtractionOperator):
    """``@task.delix_ocr``: the function returns ``images``; see :func:`delix_ocr_task`."""

    template_fields: Sequence[str] = _template_fields(ImageExtractionOperator, "images")
    template_fields_renderers: ClassVar[dict[str, str]] = {**DecoratedOperator.template_fields_renderers}
    custom_operator_name: str = "@task.delix_ocr"


class _DelixOcrDocumentsDecoratedOperator(_DelixOcrDecoratedBase, DocumentExtractionOperator):
    """``@task.delix_ocr_documents``: the function returns ``documents``."""

    template_fields: Sequence[str] = _template_fields(DocumentExtractionOperator, "documents")
    template_fields_renderers: ClassVar[dict[str, str]] = {**DecoratedOperator.template_fields_renderers}
    custom_operator_name: str = "@task.delix_ocr_documents"


def delix_ocr_task(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> TaskDecorator:
    """
    ``@task.delix_ocr``: OCR the scans the decorated function returns into a Parquet table.

    Takes every :class:`~airflow_provider_delix.operators.image_extraction.ImageExtractionOperator`
    argument except ``images`` (``output_path`` is required); the task's XCom is the manifest::

        @task.delix_ocr(output_path="s3://warehouse/ocr/scans", language="fa")
        def scans(folder: str) -> str:
            return f"s3://archive/scans/{folder}/"

        scans.expand(folder=["2024", "2025"])
    """
    return task_decorator_factory(
        python_callable=python_callable,
        decorated_operator_class=_DelixOcrDecoratedOperator,
        **kwargs,
    )


def delix_ocr_documents_task(
    python_callable: Callable[..., Any] | None = None, **kwargs: Any
) -> TaskDecorator:
    """
    ``@task.delix_ocr_documents``: extract the PDFs the decorated function returns.

    Takes every :class:`~airflow_provider_delix.operators.document_extraction.DocumentExtractionOperator`
    argument except ``documents`` (``pages``, ``deferrable``, ``poll_interval``, ...).
    """
    return task_decorator_factory(
        python_callable=python_callable,
        decorated_operator_class=_DelixOcrDocumentsDecoratedOperator,
        **kwargs,
    )
