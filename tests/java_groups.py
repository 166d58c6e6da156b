"""Ask Kafka's own Java client about consumer groups, to check trio-brod against it.

``tests/java/KafkaGroups.java`` serializes and reads ConsumerProtocol subscriptions and
assignments and runs Java's assignors (its header describes the requests). This module
compiles it against a Kafka classpath (once per source, classpath and JDK, cached under the
temp directory, as :mod:`javautil` does for murmur2) and speaks its line protocol::

    from tests.java_groups import JavaGroups
    with JavaGroups(kafka_libs) as java:   # one JVM for all the requests
        java.subscription_bytes(subscription, version=3)
        java.assign("range", {"t": 4}, {"m1": MemberSubscription(("t",))})

Unit tests must not need Java: they use ``tests/group_vectors.py``, made with this module::

    python -m tests.java_groups vectors ~/.cache/trio-brod/kafka/4.3.1/libs \
        > tests/group_vectors.py
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from tests.javautil import Classpath, _jdk_tool, classpath_string, compile_java
from trio_brod.groups._protocol import MemberAssignment, MemberSubscription, TopicPartition

__all__ = ["JAVA_SOURCE", "JavaGroups", "assign_cases", "protocol_cases"]

JAVA_SOURCE = Path(__file__).resolve().parent / "java" / "KafkaGroups.java"
_MAIN_CLASS = "KafkaGroups"


# ------------------------------------------------------------------------ the line protocol


def _s(value: str | None) -> str:
    return "-" if value is None else value.encode().hex()


def _b(value: bytes | None) -> str:
    return "-" if value is None else value.hex()


def _list(items: Sequence[str]) -> str:
    return ",".join(items) if items else "."


def _tps(partitions: Sequence[TopicPartition]) -> str:
    return _list([f"{_s(topic)}:{p}" for topic, p in partitions])


def _read_list(token: str) -> list[str]:
    return [] if token == "." else token.split(",")


def _read_s(token: str) -> str | None:
    return None if token == "-" else bytes.fromhex(token).decode()


def _read_tps(token: str) -> tuple[TopicPartition, ...]:
    out = []
    for item in _read_list(token):
        topic, _, p = item.rpartition(":")
        out.append((bytes.fromhex(topic).decode(), int(p)))
    return tuple(out)


def _sub_fields(s: MemberSubscription) -> str:
    return " ".join(
        [
            _list([_s(t) for t in s.topics]),
            _b(s.user_data),
            _tps(s.owned_partitions),
            str(s.generation_id),
            _s(s.rack_id),
        ]
    )


class JavaGroups:
    """One JVM running ``KafkaGroups``; requests go one at a time over its stdin."""

    def __init__(self, classpath: Classpath) -> None:
        cp = classpath_string(classpath)
        classes = compile_java(JAVA_SOURCE, _MAIN_CLASS, cp)
        self._process = subprocess.Popen(
            [_jdk_tool("java"), "-cp", f"{classes}{os.pathsep}{cp}", _MAIN_CLASS],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def __enter__(self) -> JavaGroups:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.close()
        self._process.wait(timeout=60)
        self._process.stdout.close()

    def _ask(self, lines: Sequence[str], answers: int = 1) -> list[str]:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None
        assert stdout is not None
        stdin.write("".join(line + "\n" for line in lines))
        stdin.flush()
        out = []
        for _ in range(answers):
            line = stdout.readline()
            if not line:
                raise RuntimeError("KafkaGroups exited")
            out.append(line.rstrip("\n"))
        return out

    def subscription_bytes(self, s: MemberSubscription, version: int) -> str:
        """The hex of Java's bytes, or ``ERR <exception>``."""
        return self._ask([f"SUB {version} {_sub_fields(s)}"])[0]

    def assignment_bytes(self, a: MemberAssignment, version: int) -> str:
        """The hex of Java's bytes, or ``ERR <exception>``."""
        return self._ask([f"ASN {version} {_tps(a.partitions)} {_b(a.user_data)}"])[0]

    def read_subscription(self, data: bytes) -> MemberSubscription | str:
        """What Java reads from ``data``, or ``ERR <exception>``."""
        answer = self._ask([f"DSUB {data.hex()}"])[0]
        if answer.startswith("ERR"):
            return answer
        topics, user_data, owned, generation, rack = answer.split(" ")
        return MemberSubscription(
            topics=tuple(t for t in (_read_s(x) for x in _read_list(topics)) if t is not None),
            user_data=None if user_data == "-" else bytes.fromhex(user_data),
            owned_partitions=_read_tps(owned),
            generation_id=int(generation),
            rack_id=_read_s(rack),
        )

    def read_assignment(self, data: bytes) -> MemberAssignment | str:
        """What Java reads from ``data``, or ``ERR <exception>``."""
        answer = self._ask([f"DASN {data.hex()}"])[0]
        if answer.startswith("ERR"):
            return answer
        partitions, user_data = answer.split(" ")
        return MemberAssignment(
            partitions=_read_tps(partitions),
            user_data=None if user_data == "-" else bytes.fromhex(user_data),
        )

    def assign(
        self,
        assignor: str,
        partitions_per_topic: Mapping[str, int],
        subscriptions: Mapping[str, MemberSubscription],
    ) -> dict[str, tuple[TopicPartition, ...]] | str:
        """Java's assignment, each member's partitions sorted; or ``ERR <exception>``."""
        topics = _list([f"{_s(t)}:{n}" for t, n in partitions_per_topic.items()])
        lines = [f"ASSIGN {assignor} {topics} {len(subscriptions)}"]
        for member, s in subscriptions.items():
            lines.append(f"{_s(member)} {_s(s.group_instance_id)} {_tps_member(s)}")
        first = self._ask(lines)[0]
        if first.startswith("ERR"):
            self._ask([], 1)  # END
            return first
        answers = [first, *self._ask([], len(subscriptions))]
        assert answers[-1] == "END", answers[-1]
        result = {}
        for line in answers[:-1]:
            member, partitions = line.split(" ")
            member_id = _read_s(member)
            assert member_id is not None
            result[member_id] = tuple(sorted(_read_tps(partitions)))
        return result


def _tps_member(s: MemberSubscription) -> str:
    return " ".join(
        [
            _list([_s(t) for t in s.topics]),
            _tps(s.owned_partitions),
            str(s.generation_id),
            _b(s.user_data),
            _s(s.rack_id),
        ]
    )


# ----------------------------------------------------------------------- random inputs


def protocol_cases(rng: random.Random, count: int) -> list[MemberSubscription | MemberAssignment]:
    """Random subscriptions and assignments, with every field varied."""
    names = ["a", "b", "orders", "t.x", "T_1", "longer-topic-name-" + "x" * 40, "ü-topic"]
    out: list[MemberSubscription | MemberAssignment] = []
    for _ in range(count):
        topics = rng.sample(names, rng.randint(0, len(names)))
        partitions = [(rng.choice(names), rng.randint(0, 2**31 - 1 if rng.random() < 0.1 else 20))]
        partitions += [(rng.choice(names), rng.randint(0, 20)) for _ in range(rng.randint(0, 8))]
        partitions = list(dict.fromkeys(partitions))
        rng.shuffle(partitions)
        user_data = rng.choice([None, b"", bytes(rng.randbytes(rng.randint(1, 12)))])
        if rng.random() < 0.5:
            out.append(
                MemberSubscription(
                    topics=tuple(topics),
                    user_data=user_data,
                    owned_partitions=tuple(partitions if rng.random() < 0.7 else []),
                    generation_id=rng.choice([-1, 0, 1, 7, 2**31 - 1]),
                    rack_id=rng.choice([None, "rack-a", "r\u00e9"]),
                )
            )
        else:
            out.append(MemberAssignment(partitions=tuple(partitions), user_data=user_data))
    return out


def assign_cases(
    rng: random.Random, count: int, *, max_members: int = 7, max_topics: int = 4
) -> list[tuple[dict[str, int], dict[str, MemberSubscription]]]:
    """Random groups: topics and partition counts, members with subscriptions, group
    instance ids, owned partitions (mostly from a plausible previous assignment, sometimes
    overlapping or stale) and generations."""
    cases = []
    for _ in range(count):
        topics = {f"t{i}": rng.randint(0, 9) for i in range(rng.randint(1, max_topics))}
        names = list(topics)
        if rng.random() < 0.2:
            names.append("missing")  # subscribed, but not in the metadata
        n = rng.randint(1, max_members)
        same = rng.random() < 0.5
        common = rng.sample(names, rng.randint(1, len(names)))
        all_partitions = [(t, p) for t, c in topics.items() for p in range(c)]
        rng.shuffle(all_partitions)
        members: dict[str, MemberSubscription] = {}
        ids = [f"member-{rng.randint(0, 999):03d}-{i}" for i in range(n)]
        rng.shuffle(ids)
        base_generation = rng.randint(1, 5)
        for i, member in enumerate(ids):
            subscribed = common if same else rng.sample(names, rng.randint(1, len(names)))
            owned: list[TopicPartition] = []
            if rng.random() < 0.8:
                owned = all_partitions[i :: n + rng.randint(0, 2)]
            if rng.random() < 0.15 and all_partitions:
                owned.append(rng.choice(all_partitions))
            owned = list(dict.fromkeys(owned))
            generation = -1 if not owned else base_generation - rng.choice([0, 0, 0, 1])
            user_data = None
            if rng.random() < 0.2:
                # An old member: generation only in the cooperative-sticky user data.
                user_data = generation.to_bytes(4, "big", signed=True)
                generation = -1
            members[member] = MemberSubscription(
                topics=tuple(subscribed),
                owned_partitions=tuple(owned),
                generation_id=generation,
                user_data=user_data,
                group_instance_id=f"instance-{rng.randint(0, 99)}-{i}"
                if rng.random() < 0.3
                else None,
            )
        cases.append((topics, members))
    return cases


# ----------------------------------------------------------------------- the vectors file


def print_vectors(classpath: Classpath) -> None:
    """Print ``tests/group_vectors.py`` from Java's answers."""
    rng = random.Random(12)
    with JavaGroups(classpath) as java:
        print('"""Consumer group vectors computed by Kafka\'s own Java client, for the unit tests.')
        print()
        print("Made with ``python -m tests.java_groups vectors <kafka libs>``")
        print("(tests/java_groups.py, tests/java/KafkaGroups.java) against kafka-clients 4.3.1")
        print("on Java 17; do not edit. Cases where Java throws hold 'ERR <exception>'.")
        print('"""')
        print()
        print("from trio_brod.groups._protocol import MemberAssignment, MemberSubscription")
        print()
        print("# (value, version, Java's bytes as hex or 'ERR <exception>')")
        print("PROTOCOL_VECTORS: list[tuple[MemberSubscription | MemberAssignment, int, str]] = [")
        for case in protocol_cases(rng, 30):
            for version in range(4):
                if isinstance(case, MemberSubscription):
                    answer = java.subscription_bytes(case, version)
                else:
                    answer = java.assignment_bytes(case, version)
                print(f"    ({case!r}, {version}, {answer!r}),")
        print("]")
        print()
        print("# (assignor, partitions per topic, subscriptions, Java's assignment: sorted)")
        print("ASSIGN_VECTORS = [")
        for assignor in ("range", "roundrobin", "cooperative-sticky"):
            for topics, members in assign_cases(rng, 40):
                answer = java.assign(assignor, topics, members)
                print(f"    ({assignor!r}, {topics!r}, {members!r}, {answer!r}),")
        print("]")


def main(argv: Sequence[str]) -> int:
    """``python tests/java_groups.py vectors CLASSPATH``."""
    if len(argv) != 2 or argv[0] != "vectors":
        print(__doc__, file=sys.stderr)
        return 2
    print_vectors(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
