"""Human-readable numbers for tables, timelines and verdicts."""


def format_bytes(count: int) -> str:
    """Return a byte count in decimal units: ``512 B``, ``1.2 kB``, ``3.4 MB``."""
    if count < 1000:
        return f"{count} B"
    value = float(count)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 1000 or unit == "TB":
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")


def format_seconds(seconds: float | None) -> str:
    """Return a duration in a fitting unit: ``0.42 ms``, ``1.3 s``, ``2 min 5 s``."""
    if seconds is None:
        return "-"
    if seconds < 0:
        return "-" + format_seconds(-seconds)
    # Each branch checks the rounded value, so 0.9999996 s reads "1.00 s",
    # not "1000.0 ms".
    if round(seconds * 1e6) < 1000:
        return f"{seconds * 1e6:.0f} µs"
    millis = seconds * 1000
    if round(millis, 1) < 10:
        return f"{millis:.2f} ms"
    if round(millis, 1) < 1000:
        return f"{millis:.1f} ms"
    if round(seconds, 2) < 10:
        return f"{seconds:.2f} s"
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
