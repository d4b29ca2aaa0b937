"""JSON the browser can parse: NaN and infinities sent as null.

A diverged run's metrics hold NaN losses; Python's json writes them as a bare NaN, which is not JSON
(a browser's JSON.parse refuses the whole answer) and which Starlette's JSONResponse refuses to
write at all (a 500). Every JSON answer and stream event of the app goes through `finite`.
"""

import json
import math

from fastapi.responses import JSONResponse


def finite(value):
    """`value` with every NaN and infinity made None: a diverged run's metrics hold NaN losses,
    which JSON can't carry (a browser's JSON.parse refuses the bare NaN Python would write)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


class FiniteJSONResponse(JSONResponse):
    """The app's JSON: NaN and infinities as null."""

    def render(self, content) -> bytes:
        return json.dumps(finite(content), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
