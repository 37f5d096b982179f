"""The spec's code tables: service status codes, lifecycle floors, leave-code bits, error levels."""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

#: eventType → the vendor's msgName (spec "回调事件"); dispatch never reads msgName from a body.
EVENT_NAMES: Final = MappingProxyType(
    {
        1: "cloud_recording_error",
        2: "cloud_recording_warning",
        3: "cloud_recording_status_update",
        4: "cloud_recording_file_infos",
        11: "session_exit",
        12: "session_failover",
        30: "uploader_started",
        31: "uploaded",
        32: "backuped",
        33: "uploading_progress",
        40: "recorder_started",
        41: "recorder_leave",
        42: "recorder_slice_start",
        43: "recorder_audio_stream_state_changed",
        44: "recorder_video_stream_state_changed",
        60: "vod_started",
        61: "vod_triggered",
    }
)

#: Service status codes (spec "云端录制服务状态码").
STATUS_NAMES: Final = MappingProxyType(
    {
        0: "not_started",
        1: "initialised",
        2: "recorder_starting",
        3: "uploader_started",
        4: "recorder_started",
        5: "first_file_uploaded",
        6: "recording_stopped",
        7: "service_stopped",
        8: "about_to_exit",
        20: "exited_abnormally",
    }
)

#: No later event changes a terminal status.
TERMINAL_STATUSES: Final = frozenset({8, 20})

#: Lifecycle events raise the status to at least this code (the issue's lifecycle table).
STATUS_FLOOR_BY_EVENT_TYPE: Final = MappingProxyType(
    {
        30: 3,  # uploader_started
        40: 4,  # recorder_started
        4: 5,  # cloud_recording_file_infos: first M3U8 uploaded
        41: 6,  # recorder_leave
        31: 7,  # uploaded
        32: 7,  # backuped
    }
)

#: session_exit's exitStatus → terminal status: 0 normal exit after upload, 1 abnormal exit.
STATUS_BY_EXIT_STATUS: Final = MappingProxyType({0: 8, 1: 20})

#: recorder_leave bits (spec "LEAVE_CODE_*"); 0 alone means LEAVE_CODE_INIT.
LEAVE_CODE_BITS: Final = MappingProxyType(
    {
        2: "sigint",  # LEAVE_CODE_SIG: the core service received SIGINT
        4: "no_users",  # LEAVE_CODE_NO_USERS: nobody else left in the channel
        8: "timer_catch",  # LEAVE_CODE_TIMER_CATCH: ignorable
        16: "client_leave",  # LEAVE_CODE_CLIENT_LEAVE: the recorder called leaveChannel
    }
)
LEAVE_CODE_INIT: Final = "init_failed"

#: cloud_recording_error errorLevel (spec event 1): 1 debug, 2 minor, 3 medium, 4 major, 5 fatal ("query the
#: recording").
FATAL_ERROR_LEVEL: Final = 5

#: Stream state of events 43/44.
STREAM_RECEIVING: Final = 0


def status_rank(status: int) -> int:
    """Order statuses along the lifecycle: 0..8 by number, 20 (abnormal exit) after everything."""
    return 100 if status == 20 else status


def leave_reasons(leave_code: int) -> tuple[str, ...]:
    """Decode a leave code into its reasons, lowest bit first (0 is init failure)."""
    reasons = _LEAVE_REASONS.get(leave_code)
    return reasons if reasons is not None else _decode_leave_code(leave_code)


def _decode_leave_code(leave_code: int) -> tuple[str, ...]:
    if leave_code == 0:
        return (LEAVE_CODE_INIT,)
    known = tuple(name for bit, name in LEAVE_CODE_BITS.items() if leave_code & bit)
    unknown = leave_code & ~sum(LEAVE_CODE_BITS)
    # Older bit meanings differed (spec "Field drift"): keep bits we cannot name instead of dropping them.
    return known + ((f"unknown_bits_{unknown}",) if unknown else ())


#: Every code made of the documented bits (and bit 1), decoded once: every recorder_leave reads one.
_LEAVE_REASONS: Final = {code: _decode_leave_code(code) for code in range(2 * max(LEAVE_CODE_BITS))}
