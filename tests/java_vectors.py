"""murmur2 and partition vectors computed by Kafka's own Java code, for the unit tests.

Made once with tests/javautil.py, so that unit tests need no Java.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------------------------
# Vectors from Kafka's Java client.
#
# Produced once by running tests/java/KafkaPartitions.java (through tests/javautil.py) against
# kafka-clients 4.3.1 from Maven Central, on Java 17:
#
#     mvn -q -B org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
#         -DoutputDirectory=/tmp/kafka-clients   # with a pom depending on kafka-clients:4.3.1
#     python tests/javautil.py vectors /tmp/kafka-clients > /tmp/vectors.py
#
# and pasted below unchanged (then `ruff format`). Each row: the key, Utils.murmur2(key) as
# Java returns it (a signed int), and Utils.toPositive(Utils.murmur2(key)) % count for each
# count of VECTOR_COUNTS; the Java program also checked that the producer's
# BuiltInPartitioner.partitionForKey agreed on every one. The keys come from
# javautil.vector_keys(): the empty key, every 1-3 byte tail, sign-bit bytes, Kafka's own
# UtilsTest keys, application-like and non-ASCII keys, Java-serialized ints and longs, lengths
# around 32 bytes (where trio-brod's murmur2 changes strategy), keys up to 1027 bytes, and
# 4-byte keys built to hash to Integer.MIN_VALUE, MIN_VALUE + 1, MAX_VALUE, 0, -1 and 1.
# ---------------------------------------------------------------------------------------------

VECTOR_COUNTS = (1, 2, 3, 7, 8, 10, 12, 31, 100, 1000, 2**31 - 1)
JAVA_VECTORS: list[tuple[bytes, int, tuple[int, ...]]] = [
    (bytes.fromhex(""), 275646681, (0, 1, 0, 2, 1, 1, 9, 13, 81, 681, 275646681)),
    (bytes.fromhex("00"), 375494588, (0, 0, 2, 0, 4, 8, 8, 20, 88, 588, 375494588)),
    (bytes.fromhex("61"), -1563381124, (0, 0, 1, 5, 4, 4, 4, 28, 24, 524, 584102524)),
    (bytes.fromhex("7f"), 21296028, (0, 0, 0, 5, 4, 8, 0, 20, 28, 28, 21296028)),
    (bytes.fromhex("80"), 857690492, (0, 0, 2, 1, 4, 2, 8, 7, 92, 492, 857690492)),
    (bytes.fromhex("ff"), -311467685, (0, 1, 0, 5, 3, 3, 3, 12, 63, 963, 1836015963)),
    (bytes.fromhex("6162"), 316155434, (0, 0, 2, 0, 2, 4, 2, 12, 34, 434, 316155434)),
    (bytes.fromhex("ffff"), -1642832928, (0, 0, 2, 0, 0, 0, 8, 15, 20, 720, 504650720)),
    (bytes.fromhex("8001"), 1506208697, (0, 1, 2, 0, 1, 7, 5, 10, 97, 697, 1506208697)),
    (bytes.fromhex("616263"), 479470107, (0, 1, 0, 4, 3, 7, 3, 20, 7, 107, 479470107)),
    (bytes.fromhex("000000"), 1013532917, (0, 1, 2, 5, 5, 7, 5, 7, 17, 917, 1013532917)),
    (bytes.fromhex("ffffff"), 1548199422, (0, 0, 0, 0, 6, 2, 6, 26, 22, 422, 1548199422)),
    (bytes.fromhex("80007f"), 2046301964, (0, 0, 2, 0, 4, 4, 8, 24, 64, 964, 2046301964)),
    (bytes.fromhex("61626364"), -1323649548, (0, 0, 2, 5, 4, 0, 8, 17, 0, 100, 823834100)),
    (bytes.fromhex("00000000"), 850957120, (0, 0, 1, 6, 0, 0, 4, 21, 20, 120, 850957120)),
    (bytes.fromhex("ffffffff"), 644171429, (0, 1, 2, 6, 5, 9, 5, 16, 29, 429, 644171429)),
    (bytes.fromhex("80808080"), -95523324, (0, 0, 2, 1, 4, 4, 8, 16, 24, 324, 2051960324)),
    (bytes.fromhex("6162636465"), 461995741, (0, 1, 1, 4, 5, 1, 1, 13, 41, 741, 461995741)),
    (bytes.fromhex("616263646566"), 1870650108, (0, 0, 0, 5, 4, 8, 0, 27, 8, 108, 1870650108)),
    (bytes.fromhex("61626364656667"), -346467175, (0, 1, 1, 4, 1, 3, 1, 18, 73, 473, 1801016473)),
    (bytes.fromhex("6162636465666768"), -955427363, (0, 1, 0, 0, 5, 5, 9, 17, 85, 285, 1192056285)),
    (
        bytes.fromhex("fedcba98765432100f"),
        -38780426,
        (0, 0, 0, 3, 6, 2, 6, 18, 22, 222, 2108703222),
    ),
    (bytes.fromhex("3231"), -973932308, (0, 0, 0, 3, 4, 0, 0, 26, 40, 340, 1173551340)),
    (bytes.fromhex("666f6f626172"), -790332482, (0, 0, 0, 0, 6, 6, 6, 27, 66, 166, 1357151166)),
    (
        bytes.fromhex("612d6c6974746c652d6269742d6c6f6e672d737472696e67"),
        -985981536,
        (0, 0, 2, 1, 0, 2, 8, 2, 12, 112, 1161502112),
    ),
    (
        bytes.fromhex("612d6c6974746c652d6269742d6c6f6e6765722d737472696e67"),
        -1486304829,
        (0, 1, 2, 0, 3, 9, 11, 0, 19, 819, 661178819),
    ),
    (
        bytes.fromhex(
            "6c6b6a683233346c68396669756839307932336f697568736166756a6861646f6632323970687239"
            "6831396838396838"
        ),
        -58897971,
        (0, 1, 2, 3, 5, 7, 5, 16, 77, 677, 2088585677),
    ),
    (bytes.fromhex("68656c6c6f"), 2132663229, (0, 1, 0, 4, 5, 9, 9, 1, 29, 229, 2132663229)),
    (bytes.fromhex("6b61666b61"), -798503068, (0, 0, 1, 3, 4, 0, 4, 18, 80, 580, 1348980580)),
    (
        bytes.fromhex("7472696f2d62726f64"),
        -90621334,
        (0, 0, 1, 3, 2, 4, 10, 7, 14, 314, 2056862314),
    ),
    (bytes.fromhex("757365722d31"), 1404122828, (0, 0, 2, 3, 4, 8, 8, 24, 28, 828, 1404122828)),
    (bytes.fromhex("757365722d3432"), 1459644460, (0, 0, 1, 1, 4, 0, 4, 5, 60, 460, 1459644460)),
    (
        bytes.fromhex("6f726465722d31323334353637"),
        -728454695,
        (0, 1, 0, 6, 1, 3, 9, 16, 53, 953, 1419028953),
    ),
    (
        bytes.fromhex("637573746f6d65723a3966386537643663"),
        215537758,
        (0, 0, 1, 2, 6, 8, 10, 28, 58, 758, 215537758),
    ),
    (
        bytes.fromhex("31323365343536372d653839622d313264332d613435362d343236363134313734303030"),
        210376136,
        (0, 0, 2, 5, 0, 6, 8, 30, 36, 136, 210376136),
    ),
    (
        bytes.fromhex("30303030303030302d303030302d303030302d303030302d303030303030303030303030"),
        713427837,
        (0, 1, 0, 3, 5, 7, 9, 6, 37, 837, 713427837),
    ),
    (bytes.fromhex("00000007"), -1028359445, (0, 1, 0, 1, 3, 3, 3, 23, 3, 203, 1119124203)),
    (bytes.fromhex("00000001"), -173113808, (0, 0, 0, 2, 0, 0, 0, 21, 40, 840, 1974369840)),
    (bytes.fromhex("075bcd15"), -1159482564, (0, 0, 2, 0, 4, 4, 8, 22, 84, 84, 988001084)),
    (bytes.fromhex("fffffffe"), -1901080304, (0, 0, 0, 5, 0, 4, 0, 30, 44, 344, 246403344)),
    (bytes.fromhex("000000000000002a"), 506863552, (0, 0, 1, 6, 0, 2, 4, 5, 52, 552, 506863552)),
    (bytes.fromhex("8000000000000000"), 1290709624, (0, 0, 1, 1, 0, 4, 4, 10, 24, 624, 1290709624)),
    (bytes.fromhex("d0bad0bbd18ed187"), 2122343024, (0, 0, 2, 4, 0, 4, 8, 6, 24, 24, 2122343024)),
    (
        bytes.fromhex("e697a5e69cace8aa9ee381aee382ade383bc"),
        -734675706,
        (0, 0, 2, 0, 6, 2, 2, 23, 42, 942, 1412807942),
    ),
    (bytes.fromhex("f09f9880f09f8e89"), -1382275302, (0, 0, 2, 0, 2, 6, 2, 6, 46, 346, 765208346)),
    (bytes.fromhex("73747261c39f65"), -1032057574, (0, 0, 1, 0, 2, 4, 10, 8, 74, 74, 1115426074)),
    (bytes.fromhex("636166e9"), -1225352294, (0, 0, 0, 4, 2, 4, 6, 22, 54, 354, 922131354)),
    (
        bytes.fromhex("c39c6ec3af63c3b664c3a92d7363686cc3bc7373656c2df09f9491"),
        1544417884,
        (0, 0, 1, 2, 4, 4, 4, 23, 84, 884, 1544417884),
    ),
    (
        bytes.fromhex("0714212e3b4855626f7c8996a3b0bdcad7e4f1fe0b1825323f4c59"),
        -80977715,
        (0, 1, 0, 2, 5, 3, 9, 22, 33, 933, 2066505933),
    ),
    (
        bytes.fromhex("0714212e3b4855626f7c8996a3b0bdcad7e4f1fe0b1825323f4c5966"),
        1711404792,
        (0, 0, 0, 6, 0, 2, 0, 6, 92, 792, 1711404792),
    ),
    (
        bytes.fromhex("0724415e7b98b5d2ef0c294663809dbad7f4112e4b6885a2bfdcf91633506d"),
        -1058977213,
        (0, 1, 1, 2, 3, 5, 7, 25, 35, 435, 1088506435),
    ),
    (
        bytes.fromhex("0724415e7b98b5d2ef0c294663809dbad7f4112e4b6885a2bfdcf91633506d8a"),
        -852297749,
        (0, 1, 0, 0, 3, 9, 3, 9, 99, 899, 1295185899),
    ),
    (
        bytes.fromhex("0726456483a2c1e0ff1e3d5c7b9ab9d8f71635547392b1d0ef0e2d4c6b8aa9c8e7"),
        -1747334095,
        (0, 1, 1, 6, 1, 3, 1, 3, 53, 553, 400149553),
    ),
    (
        bytes.fromhex("0726456483a2c1e0ff1e3d5c7b9ab9d8f71635547392b1d0ef0e2d4c6b8aa9c8e70625"),
        1954447250,
        (0, 0, 2, 0, 2, 0, 2, 15, 50, 250, 1954447250),
    ),
    (
        bytes.fromhex("072c51769bc0e50a2f54799ec3e80d32577ca1c6eb10355a7fa4c9ee13385d82a7ccf116"),
        -1316299162,
        (0, 0, 1, 6, 6, 6, 10, 24, 86, 486, 831184486),
    ),
    (
        bytes.fromhex(
            "78787878787878787878787878787878787878787878787878787878787878787878787878787878"
            "787878787878787878787878787878787878787878787878"
        ),
        1222492685,
        (0, 1, 2, 1, 5, 5, 5, 28, 85, 685, 1222492685),
    ),
    (
        bytes.fromhex(
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
            "ffffffffffffffffffffffffffffffffffffffff"
        ),
        1367845956,
        (0, 0, 0, 1, 4, 6, 0, 3, 56, 956, 1367845956),
    ),
    (
        bytes.fromhex(
            "073c71a6db10457aafe4194e83b8ed22578cc1f62b6095caff34699ed3083d72a7dc11467bb0e51a"
            "4f84b9ee23588dc2f72c6196cb00356a9fd4093e73a8dd12477cb1e61b5085baef24598ec3f82d62"
            "97cc01366ba0d50a3f74a9de13487db2e71c5186bb"
        ),
        1388392716,
        (0, 0, 0, 4, 4, 6, 0, 25, 16, 716, 1388392716),
    ),
    (
        bytes.fromhex(
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324252627"
            "28292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f"
            "505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f7071727374757677"
            "78797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
            "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7"
            "c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
            "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
        ),
        -1948347274,
        (0, 0, 1, 3, 6, 4, 10, 0, 74, 374, 199136374),
    ),
    (
        bytes.fromhex(
            "0768c92a8bec4dae0f70d13293f455b61778d93a9bfc5dbe1f80e142a30465c62788e94aab0c6dce"
            "2f90f152b31475d63798f95abb1c7dde3fa00162c32485e647a8096acb2c8dee4fb01172d33495f6"
            "57b8197adb3c9dfe5fc02182e344a50667c8298aeb4cad0e6fd03192f354b51677d8399afb5cbd1e"
            "7fe041a20364c52687e849aa0b6ccd2e8ff051b21374d53697f859ba1b7cdd3e9f0061c22384e546"
            "a70869ca2b8ced4eaf1071d23394f556b71879da3b9cfd5ebf2081e243a40566c72889ea4bac0d6e"
            "cf3091f253b41576d73899fa5bbc1d7edf40a10263c42586e748a90a6bcc2d8eef50b11273d43596"
            "f758b91a7bdc3d9eff60c12283e445a60768c92a8bec4dae0f70d13293f455b61778d93a9bfc5dbe"
            "1f80e142a30465c62788e94aab0c6dce2f90f152b31475d63798f95abb1c7dde3fa00162c32485e6"
            "47a8096acb2c8dee4fb01172d33495f657b8197adb3c9dfe5fc02182e344a50667c8298aeb4cad0e"
            "6fd03192f354b51677d8399afb5cbd1e7fe041a20364c52687e849aa0b6ccd2e8ff051b21374d536"
            "97f859ba1b7cdd3e9f0061c22384e546a70869ca2b8ced4eaf1071d23394f556b71879da3b9cfd5e"
            "bf2081e243a40566c72889ea4bac0d6ecf3091f253b41576d73899fa5bbc1d7edf40a10263c42586"
            "e748a90a6bcc2d8eef50b11273d43596f758b91a7bdc3d9eff60c12283e445a60768c92a8bec4dae"
            "0f70d13293f455b61778d93a9bfc5dbe1f80e142a30465c62788e94aab0c6dce2f90f152b31475d6"
            "3798f95abb1c7dde3fa00162c32485e647a8096acb2c8dee4fb01172d33495f657b8197adb3c9dfe"
            "5fc02182e344a50667c8298aeb4cad0e6fd03192f354b51677d8399afb5cbd1e7fe041a20364c526"
            "87e849aa0b6ccd2e8ff051b21374d53697f859ba1b7cdd3e9f0061c22384e546a70869ca2b8ced4e"
            "af1071d23394f556b71879da3b9cfd5ebf2081e243a40566c72889ea4bac0d6ecf3091f253b41576"
            "d73899fa5bbc1d7edf40a10263c42586e748a90a6bcc2d8eef50b11273d43596f758b91a7bdc3d9e"
            "ff60c12283e445a60768c92a8bec4dae0f70d13293f455b61778d93a9bfc5dbe1f80e142a30465c6"
            "2788e94aab0c6dce2f90f152b31475d63798f95abb1c7dde3fa00162c32485e647a8096acb2c8dee"
            "4fb01172d33495f657b8197adb3c9dfe5fc02182e344a50667c8298aeb4cad0e6fd03192f354b516"
            "77d8399afb5cbd1e7fe041a20364c52687e849aa0b6ccd2e8ff051b21374d53697f859ba1b7cdd3e"
            "9f0061c22384e546a70869ca2b8ced4eaf1071d23394f556b71879da3b9cfd5ebf2081e243a40566"
            "c72889ea4bac0d6ecf3091f253b41576d73899fa5bbc1d7edf40a10263c42586e748a90a6bcc2d8e"
        ),
        254910731,
        (0, 1, 2, 5, 3, 1, 11, 25, 31, 731, 254910731),
    ),
    (
        bytes.fromhex(
            "07daad805326f9cc9f724518ebbe9164370addb0835629fccfa275481beec194673a0de0b386592c"
            "ffd2a5784b1ef1c4976a3d10e3b6895c2f02d5a87b4e21f4c79a6d4013e6b98c5f3205d8ab7e5124"
            "f7ca9d704316e9bc8f623508dbae815427facda0734619ecbf9265380bdeb184572afdd0a376491c"
            "efc295683b0ee1b4875a2d00d3a6794c1ff2c5986b3e11e4b78a5d3003d6a97c4f22f5c89b6e4114"
            "e7ba8d603306d9ac7f5225f8cb9e714417eabd90633609dcaf825528fbcea174471aedc09366390c"
            "dfb285582bfed1a4774a1df0c396693c0fe2b5885b2e01d4a77a4d20f3c6996c3f12e5b88b5e3104"
            "d7aa7d5023f6c99c6f4215e8bb8e613407daad805326f9cc9f724518ebbe9164370addb0835629fc"
            "cfa275481beec194673a0de0b386592cffd2a5784b1ef1c4976a3d10e3b6895c2f02d5a87b4e21f4"
            "c79a6d4013e6b98c5f3205d8ab7e5124f7ca9d704316e9bc8f623508dbae815427facda0734619ec"
            "bf9265380bdeb184572afdd0a376491cefc295683b0ee1b4875a2d00d3a6794c1ff2c5986b3e11e4"
            "b78a5d3003d6a97c4f22f5c89b6e4114e7ba8d603306d9ac7f5225f8cb9e714417eabd90633609dc"
            "af825528fbcea174471aedc09366390cdfb285582bfed1a4774a1df0c396693c0fe2b5885b2e01d4"
            "a77a4d20f3c6996c3f12e5b88b5e3104d7aa7d5023f6c99c6f4215e8bb8e613407daad805326f9cc"
            "9f724518ebbe9164370addb0835629fccfa275481beec194673a0de0b386592cffd2a5784b1ef1c4"
            "976a3d10e3b6895c2f02d5a87b4e21f4c79a6d4013e6b98c5f3205d8ab7e5124f7ca9d704316e9bc"
            "8f623508dbae815427facda0734619ecbf9265380bdeb184572afdd0a376491cefc295683b0ee1b4"
            "875a2d00d3a6794c1ff2c5986b3e11e4b78a5d3003d6a97c4f22f5c89b6e4114e7ba8d603306d9ac"
            "7f5225f8cb9e714417eabd90633609dcaf825528fbcea174471aedc09366390cdfb285582bfed1a4"
            "774a1df0c396693c0fe2b5885b2e01d4a77a4d20f3c6996c3f12e5b88b5e3104d7aa7d5023f6c99c"
            "6f4215e8bb8e613407daad805326f9cc9f724518ebbe9164370addb0835629fccfa275481beec194"
            "673a0de0b386592cffd2a5784b1ef1c4976a3d10e3b6895c2f02d5a87b4e21f4c79a6d4013e6b98c"
            "5f3205d8ab7e5124f7ca9d704316e9bc8f623508dbae815427facda0734619ecbf9265380bdeb184"
            "572afdd0a376491cefc295683b0ee1b4875a2d00d3a6794c1ff2c5986b3e11e4b78a5d3003d6a97c"
            "4f22f5c89b6e4114e7ba8d603306d9ac7f5225f8cb9e714417eabd90633609dcaf825528fbcea174"
            "471aedc09366390cdfb285582bfed1a4774a1df0c396693c0fe2b5885b2e01d4a77a4d20f3c6996c"
            "3f12e5b88b5e3104d7aa7d5023f6c99c6f4215e8bb8e613407daad"
        ),
        -1515299718,
        (0, 0, 2, 0, 2, 0, 2, 0, 30, 930, 632183930),
    ),
    (bytes.fromhex("a7d6506c"), -2147483648, (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
    (bytes.fromhex("3334f6a5"), -2147483647, (0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)),
    (bytes.fromhex("027d5343"), 2147483647, (0, 1, 1, 1, 7, 7, 7, 1, 47, 647, 0)),
    (bytes.fromhex("e3871844"), 0, (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
    (bytes.fromhex("a5d4305c"), -1, (0, 1, 1, 1, 7, 7, 7, 1, 47, 647, 0)),
    (bytes.fromhex("039d77d8"), 1, (0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)),
]
