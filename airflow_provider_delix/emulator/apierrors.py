"""The emulator's error answers, raised as exceptions so a handler stops at the first refusal.

Every refusal is raised before any state is changed; the shapes are the two 422 bodies Delix
documents (``{"message", "errors"}`` for validation, ``{"message", "error"}`` with an ErrorEnum
value), the 404 ``{}`` and the 401 of Laravel's auth middleware. Messages are in
Persian, like the real service's, with the English in parentheses for readers of test logs.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_delix.api.models import ErrorCode

MESSAGES = {
    ErrorCode.MALFORMED_FILE: "فایل معیوب است (malformed file)",
    ErrorCode.PAGE_COUNT_LIMIT_EXCEEDED: "تعداد صفحات بیش از حد مجاز است (too many pages)",
    ErrorCode.DUPLICATED_FILE: "فایل تکراری است (duplicated file)",
    ErrorCode.EXCEEDING_FILE_PAGE: "تعداد صفحات درخواستی بیش از حد مجاز است (too many pages requested)",
    ErrorCode.BAD_INPUT: "ورودی نامعتبر است (bad input)",
    ErrorCode.GENERAL_EXCEPTION: "خطای غیرمنتظره (unexpected error)",
    ErrorCode.INVALID_FILE_PAGE: "صفحات انتخاب شده نامعتبر است (invalid page selection)",
    ErrorCode.NO_SUFFICIENT_CREDITS: "اعتبار کافی نیست (not enough credits)",
    ErrorCode.STORAGE_COUNT_EXCEEDED: "تعداد فایل‌های ذخیره شده بیش از حد مجاز است (too many stored files)",
    ErrorCode.STORAGE_SIZE_EXCEEDED: "حجم فایل‌های ذخیره شده بیش از حد مجاز است (storage full)",
    ErrorCode.UNKNOWN_FIELD: "فیلد ناشناخته (unknown field)",
    ErrorCode.WRONG_FILE_TYPE: "نوع فایل برای این عملیات مناسب نیست (wrong file type)",
    ErrorCode.FILE_UNDER_PROCESSING: "فایل در حال پردازش است (file under processing)",
}
VALIDATION_MESSAGE = "اطلاعات ارسال شده نامعتبر است (the given data was invalid)"


class ApiError(Exception):
    """An HTTP answer other than success: status, JSON body and extra headers."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def enum_error(code: ErrorCode, detail: str | None = None) -> ApiError:
    """422 ``{"message", "error"}``; ``detail`` is appended to the message when given."""
    message = MESSAGES[code] if detail is None else f"{MESSAGES[code]}: {detail}"
    return ApiError(422, {"message": message, "error": code.value})


def validation_error(errors: dict[str, list[str]]) -> ApiError:
    """422 ``{"message", "errors": {field: [messages]}}``, Laravel's validation shape."""
    return ApiError(422, {"message": VALIDATION_MESSAGE, "errors": errors})


def not_found() -> ApiError:
    return ApiError(404, {})


def unauthenticated() -> ApiError:
    return ApiError(401, {"message": "Unauthenticated."})
