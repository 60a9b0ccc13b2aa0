"""What a client sees of a call (CONTRACT §6.1, §6.8): the status and the call log's
records as JSON objects, every key present (null when unknown)."""

from typing import Any

from intercom_sip.calls import CallRecord, CallStatus, RtpFigures


def status_view(status: CallStatus) -> dict[str, Any]:
    return {
        "state": status.state,
        "id": status.id,
        "direction": status.direction,
        "remote": status.remote,
        "started": status.started,
        "answered": status.answered,
        "ends_at": status.ends_at,
        "duration": status.duration,
        "codec": status.codec,
        "srtp": status.srtp,
        "dtmf_received": status.dtmf_received,
        "rtp": _rtp_view(status.rtp),
    }


def record_view(record: CallRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "direction": record.direction,
        "remote": record.remote,
        "started": record.started,
        "answered": record.answered,
        "duration": record.duration,
        "codec": record.codec,
        "srtp": record.srtp,
        "dtmf_received": record.dtmf_received,
        "rtp": _rtp_view(record.rtp),
        "ended": record.ended,
        "end_reason": record.end_reason,
        "code": record.code,
        "reason": record.reason,
    }


def _rtp_view(rtp: RtpFigures | None) -> dict[str, Any] | None:
    if rtp is None:
        return None
    return {
        "sent": rtp.sent,
        "received": rtp.received,
        "lost": rtp.lost,
        "jitter_ms": rtp.jitter_ms,
    }
