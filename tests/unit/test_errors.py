"""Tests of trio_brod.protocol.errors: the error-code table, its classes and helpers."""

from __future__ import annotations

import doctest
import importlib.util
import pickle
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_brod.protocol import errors
from trio_brod.protocol.errors import (
    ERROR_CODES_URL,
    ERRORS_BY_CODE,
    BrodError,
    InvalidMetadataKafkaError,
    KafkaError,
    LeaderNotAvailableError,
    NotLeaderOrFollowerError,
    OffsetOutOfRangeError,
    RequestTimedOutError,
    RetriableKafkaError,
    TopicAuthorizationFailedError,
    UnknownKafkaCodeError,
    UnknownServerError,
    UnknownTopicOrPartitionError,
    for_code,
    raise_for_code,
)

REPO = Path(__file__).resolve().parents[2]


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_errors", REPO / "tools" / "gen_errors.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


# Facts from Kafka's Java sources (org.apache.kafka.common.errors), written out here rather
# than taken from the generator's table, so that a wrong row in the table fails these tests.
# Every code whose exception class extends RetriableException:
JAVA_RETRIABLE = {
    "CORRUPT_MESSAGE",
    "UNKNOWN_TOPIC_OR_PARTITION",
    "LEADER_NOT_AVAILABLE",
    "NOT_LEADER_OR_FOLLOWER",
    "REQUEST_TIMED_OUT",
    "REPLICA_NOT_AVAILABLE",
    "NETWORK_EXCEPTION",
    "COORDINATOR_LOAD_IN_PROGRESS",
    "COORDINATOR_NOT_AVAILABLE",
    "NOT_COORDINATOR",
    "NOT_ENOUGH_REPLICAS",
    "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
    "NOT_CONTROLLER",
    "CONCURRENT_TRANSACTIONS",
    "KAFKA_STORAGE_ERROR",
    "FETCH_SESSION_ID_NOT_FOUND",
    "INVALID_FETCH_SESSION_EPOCH",
    "LISTENER_NOT_FOUND",
    "FENCED_LEADER_EPOCH",
    "UNKNOWN_LEADER_EPOCH",
    "OFFSET_NOT_AVAILABLE",
    "PREFERRED_LEADER_NOT_AVAILABLE",
    "ELIGIBLE_LEADERS_NOT_AVAILABLE",
    "ELECTION_NOT_NEEDED",
    "UNSTABLE_OFFSET_COMMIT",
    "THROTTLING_QUOTA_EXCEEDED",
    "UNKNOWN_TOPIC_ID",
    "INCONSISTENT_TOPIC_ID",
    "FETCH_SESSION_TOPIC_ID_ERROR",
    "SHARE_SESSION_NOT_FOUND",
    "INVALID_SHARE_SESSION_EPOCH",
    "SHARE_SESSION_LIMIT_REACHED",
}
# ... and, of those, every one whose class extends InvalidMetadataException:
JAVA_INVALID_METADATA = {
    "UNKNOWN_TOPIC_OR_PARTITION",
    "LEADER_NOT_AVAILABLE",
    "NOT_LEADER_OR_FOLLOWER",
    "REPLICA_NOT_AVAILABLE",
    "NETWORK_EXCEPTION",
    "KAFKA_STORAGE_ERROR",
    "LISTENER_NOT_FOUND",
    "FENCED_LEADER_EPOCH",
    "PREFERRED_LEADER_NOT_AVAILABLE",
    "ELIGIBLE_LEADERS_NOT_AVAILABLE",
    "ELECTION_NOT_NEEDED",
    "UNKNOWN_TOPIC_ID",
    "INCONSISTENT_TOPIC_ID",
}
# A few (code, name, class name) triples, checked against the real classes.
SPOT_CHECKS = [
    (-1, "UNKNOWN_SERVER_ERROR", "UnknownServerError"),
    (1, "OFFSET_OUT_OF_RANGE", "OffsetOutOfRangeError"),
    (3, "UNKNOWN_TOPIC_OR_PARTITION", "UnknownTopicOrPartitionError"),
    (6, "NOT_LEADER_OR_FOLLOWER", "NotLeaderOrFollowerError"),
    (7, "REQUEST_TIMED_OUT", "RequestTimedOutError"),
    (13, "NETWORK_EXCEPTION", "NetworkError"),
    (17, "INVALID_TOPIC_EXCEPTION", "InvalidTopicError"),
    (29, "TOPIC_AUTHORIZATION_FAILED", "TopicAuthorizationFailedError"),
    (56, "KAFKA_STORAGE_ERROR", "KafkaStorageError"),
    (90, "PRODUCER_FENCED", "ProducerFencedError"),
    (100, "UNKNOWN_TOPIC_ID", "UnknownTopicIdError"),
    (106, "FETCH_SESSION_TOPIC_ID_ERROR", "FetchSessionTopicIdError"),
    (129, "REBOOTSTRAP_REQUIRED", "RebootstrapRequiredError"),
    (133, "SHARE_SESSION_LIMIT_REACHED", "ShareSessionLimitReachedError"),
]

KNOWN_CLASSES = sorted(ERRORS_BY_CODE.values(), key=lambda cls: cls.code)


# --- the table -------------------------------------------------------------------------------


def test_generated_block_is_up_to_date() -> None:
    source = gen.ERRORS_PY.read_text(encoding="utf-8")
    assert gen.splice(source, gen.render()) == source, "run python tools/gen_errors.py"


def test_every_row_of_the_table_has_its_class() -> None:
    assert len(gen.ERRORS) == len(ERRORS_BY_CODE)
    for row in gen.ERRORS:
        cls = for_code(row.code)
        assert cls is ERRORS_BY_CODE[row.code]
        assert cls.__name__ == gen.class_name(row.name)
        assert getattr(errors, cls.__name__) is cls
        assert cls.__name__ in errors.__all__
        assert cls.__module__ == errors.__name__
        assert (cls.code, cls.name, cls.message) == (row.code, row.name, row.message)
        assert cls.retriable == (row.retry is not gen.Retry.NO)
        assert cls.invalid_metadata == (row.retry is gen.Retry.REFRESH)


def test_codes_run_from_minus_one_to_the_newest_without_gaps() -> None:
    assert set(ERRORS_BY_CODE) == {-1} | set(range(1, 134))


def test_codes_and_names_are_unique_and_classes_are_kafka_errors() -> None:
    names = [cls.name for cls in KNOWN_CLASSES]
    class_names = [cls.__name__ for cls in KNOWN_CLASSES]
    assert len(set(names)) == len(names)
    assert len(set(class_names)) == len(class_names)
    for code, cls in ERRORS_BY_CODE.items():
        assert issubclass(cls, KafkaError)
        assert issubclass(cls, BrodError)
        assert cls.code == code
        assert cls.message
        assert cls.__doc__
        assert cls.__doc__.startswith(f"{cls.name} ({code}): ")


@pytest.mark.parametrize(("code", "name", "class_name"), SPOT_CHECKS)
def test_spot_checks_of_codes_names_and_class_names(code: int, name: str, class_name: str) -> None:
    cls = getattr(errors, class_name)
    assert for_code(code) is cls
    assert cls.code == code
    assert cls.name == name


def test_retriable_matches_java() -> None:
    retriable = {cls.name for cls in KNOWN_CLASSES if cls.retriable}
    assert retriable == JAVA_RETRIABLE


def test_invalid_metadata_matches_java() -> None:
    refresh = {cls.name for cls in KNOWN_CLASSES if cls.invalid_metadata}
    assert refresh == JAVA_INVALID_METADATA
    # Retriable but not "refresh metadata": the coordinator must be found again instead, or
    # the broker is merely behind.
    for name in ("NOT_COORDINATOR", "COORDINATOR_NOT_AVAILABLE", "UNKNOWN_LEADER_EPOCH"):
        assert name in JAVA_RETRIABLE
        assert name not in refresh


def test_spot_checks_of_flags() -> None:
    assert NotLeaderOrFollowerError.retriable
    assert NotLeaderOrFollowerError.invalid_metadata
    assert UnknownTopicOrPartitionError.invalid_metadata
    assert RequestTimedOutError.retriable
    assert not RequestTimedOutError.invalid_metadata
    assert not TopicAuthorizationFailedError.retriable
    assert not OffsetOutOfRangeError.retriable
    assert not UnknownServerError.retriable


@pytest.mark.parametrize("cls", KNOWN_CLASSES, ids=lambda cls: cls.name)
def test_flags_and_base_classes_agree(cls: type[KafkaError]) -> None:
    assert issubclass(cls, RetriableKafkaError) == cls.retriable
    assert issubclass(cls, InvalidMetadataKafkaError) == cls.invalid_metadata
    assert cls.retriable or not cls.invalid_metadata


def test_error_codes_map_is_read_only() -> None:
    with pytest.raises(TypeError):
        ERRORS_BY_CODE[999] = UnknownServerError  # type: ignore[index]


def test_all_lists_real_public_names_with_docstrings() -> None:
    assert len(set(errors.__all__)) == len(errors.__all__)
    for name in errors.__all__:
        value = getattr(errors, name)
        if isinstance(value, type) or callable(value):
            assert value.__doc__, name


def test_docs_link() -> None:
    assert ERROR_CODES_URL == "https://kafka.apache.org/protocol.html#protocol_error_codes"
    assert NotLeaderOrFollowerError.docs_url == ERROR_CODES_URL


# --- str, repr, equality -------------------------------------------------------------------


def test_str_with_topic_partition_and_broker_message() -> None:
    exc = for_code(6)("Leader is broker 2", topic="t", partition=3)
    assert str(exc) == "NOT_LEADER_OR_FOLLOWER (6) for t[3]: Leader is broker 2"
    assert exc.broker_message == "Leader is broker 2"
    assert exc.context == {"topic": "t", "partition": 3}


def test_str_falls_back_to_the_default_message() -> None:
    for missing in (None, ""):
        exc = UnknownTopicOrPartitionError(missing, topic="t", partition=0)
        assert exc.broker_message is None
        assert str(exc) == (
            "UNKNOWN_TOPIC_OR_PARTITION (3) for t[0]: This server does not host this "
            "topic-partition."
        )


@pytest.mark.parametrize(
    ("context", "where"),
    [
        ({}, ""),
        ({"topic": "orders"}, " for orders"),
        ({"partition": 4}, " for partition 4"),
        ({"group_id": "g"}, " for group_id='g'"),
        ({"topic": "t", "partition": 0, "node_id": 2}, " for t[0], node_id=2"),
    ],
)
def test_str_shows_the_context(context: dict[str, object], where: str) -> None:
    exc = RequestTimedOutError("slow", **context)
    assert str(exc) == f"REQUEST_TIMED_OUT (7){where}: slow"


def test_kafka_error_itself_reads_as_unknown_server_error() -> None:
    assert str(KafkaError()) == (
        "UNKNOWN_SERVER_ERROR (-1): The server experienced an unexpected error when processing "
        "the request."
    )


def test_broker_message_is_the_only_positional_argument() -> None:
    exc = RequestTimedOutError("m", broker_message="x", message="y")
    assert exc.broker_message == "m"
    assert exc.context == {"broker_message": "x", "message": "y"}
    assert exc.args == ("m",)
    assert RequestTimedOutError().args == ()


def test_repr_evaluates_to_an_equal_exception() -> None:
    exc = NotLeaderOrFollowerError("moved", topic="t", partition=3)
    assert repr(exc) == "NotLeaderOrFollowerError('moved', topic='t', partition=3)"
    assert eval(repr(exc), vars(errors)) == exc
    assert repr(NotLeaderOrFollowerError()) == "NotLeaderOrFollowerError()"


def test_equality() -> None:
    exc = NotLeaderOrFollowerError("m", topic="t", partition=1)
    same = NotLeaderOrFollowerError("m", topic="t", partition=1)
    assert exc == same
    assert hash(exc) == hash(same)
    assert exc != NotLeaderOrFollowerError("other", topic="t", partition=1)
    assert exc != NotLeaderOrFollowerError("m", topic="t", partition=2)
    assert exc != LeaderNotAvailableError("m", topic="t", partition=1)
    assert exc != "m"
    # Unhashable context values do not make the exception unhashable.
    assert isinstance(hash(KafkaError(None, members=["a", "b"])), int)


# --- catching --------------------------------------------------------------------------------


def test_catching_by_family() -> None:
    with pytest.raises(InvalidMetadataKafkaError):
        raise_for_code(6)
    with pytest.raises(RetriableKafkaError):
        raise_for_code(7)
    with pytest.raises(KafkaError):
        raise_for_code(29)
    with pytest.raises(TopicAuthorizationFailedError) as info:
        raise_for_code(29)
    assert not isinstance(info.value, RetriableKafkaError)


# --- for_code, raise_for_code ----------------------------------------------------------------


def test_zero_is_not_an_error() -> None:
    with pytest.raises(ValueError, match="NONE"):
        for_code(0)
    assert 0 not in ERRORS_BY_CODE


@pytest.mark.parametrize("code", [-0x8001, 0x8000, 10**9])
def test_codes_outside_int16_are_rejected(code: int) -> None:
    with pytest.raises(ValueError, match="16-bit"):
        for_code(code)


def test_raise_for_code_zero_is_a_no_op() -> None:
    raise_for_code(0)
    raise_for_code(0, "ignored", topic="t", partition=0)
    raise_for_code(False)  # a bool is an int; False is 0


def test_raise_for_code_raises_the_class_with_message_and_context() -> None:
    with pytest.raises(NotLeaderOrFollowerError) as info:
        raise_for_code(6, "moved", topic="t", partition=3)
    assert info.value.broker_message == "moved"
    assert info.value.context == {"topic": "t", "partition": 3}
    assert str(info.value).startswith("NOT_LEADER_OR_FOLLOWER (6) for t[3]: moved")


def test_unknown_codes_get_one_class_each() -> None:
    cls = for_code(9999)
    assert issubclass(cls, UnknownKafkaCodeError)
    assert issubclass(cls, UnknownServerError)
    assert for_code(9999) is cls
    assert for_code(9998) is not cls
    assert cls.code == 9999
    assert cls.name == "UNKNOWN_CODE_9999"
    assert not cls.retriable
    assert not cls.invalid_metadata
    assert 9999 not in ERRORS_BY_CODE
    exc = cls("new in Kafka 9", topic="t", partition=0)
    assert str(exc) == "UNKNOWN_CODE_9999 (9999) for t[0]: new in Kafka 9"
    assert "9999" in str(cls())


def test_unknown_negative_code() -> None:
    cls = for_code(-2)
    assert issubclass(cls, UnknownKafkaCodeError)
    assert cls.code == -2
    assert cls.__name__ == "UnknownKafkaCodeMinus2Error"
    with pytest.raises(cls):
        raise_for_code(-2)


@given(st.integers(min_value=-0x8000, max_value=0x7FFF))
def test_any_int16_code_raises_a_kafka_error_with_that_code(code: int) -> None:
    if code == 0:
        raise_for_code(code)
        return
    with pytest.raises(KafkaError) as info:
        raise_for_code(code, "m", topic="t", partition=1)
    assert info.value.code == code
    assert type(info.value) is for_code(code)
    assert str(info.value).endswith(f"({code}) for t[1]: m")


# --- pickling --------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", KNOWN_CLASSES, ids=lambda cls: cls.name)
def test_every_class_pickles(cls: type[KafkaError]) -> None:
    exc = cls("broker says", topic="t", partition=7)
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is cls
    assert copy == exc
    assert str(copy) == str(exc)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_keeps_notes_and_extra_attributes(protocol: int) -> None:
    exc = RequestTimedOutError(None, node_id=1)
    exc.add_note("while producing to orders")
    exc.attempt = 3  # type: ignore[attr-defined]
    copy = pickle.loads(pickle.dumps(exc, protocol))
    assert copy == exc
    assert copy.broker_message is None
    assert copy.__notes__ == ["while producing to orders"]
    assert copy.attempt == 3


def test_unknown_code_exceptions_pickle() -> None:
    exc = for_code(4321)("?", topic="t")
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is type(exc)
    assert copy == exc


def test_unknown_code_exception_unpickles_in_a_fresh_process() -> None:
    # In a new interpreter the class for 4322 does not exist yet; unpickling must make it.
    data = pickle.dumps(for_code(4322)("?", topic="t", partition=1))
    script = (
        "import pickle, sys\n"
        "from trio_brod.protocol.errors import UnknownKafkaCodeError\n"
        "exc = pickle.loads(sys.stdin.buffer.read())\n"
        "assert isinstance(exc, UnknownKafkaCodeError), type(exc)\n"
        "print(str(exc))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], input=data, capture_output=True, check=True
    )
    assert result.stdout.decode().strip() == "UNKNOWN_CODE_4322 (4322) for t[1]: ?"


# --- documentation -------------------------------------------------------------------------


def test_docstring_examples_run() -> None:
    result = doctest.testmod(errors, raise_on_error=False)
    assert result.attempted > 0
    assert result.failed == 0
