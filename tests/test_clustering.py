"""The offline keyword clustering (``tools.ai.clustering``): edge cases, invariants and quality on a
small set with known groups. Pure functions, no database."""

from __future__ import annotations

import random

import pytest
from sklearn.metrics import adjusted_rand_score

from tools.ai.clustering import KeywordCluster, cluster_keywords

TOPICS = (
    "running shoes",
    "trail running shoes",
    "running socks",
    "hiking boots",
    "hiking socks",
    "coffee grinder",
    "coffee beans",
    "espresso machine",
    "espresso beans",
    "yoga mat",
    "yoga pants",
    "standing desk",
)
PREFIXES = ("best", "cheap", "buy", "top rated", "how to choose", "are", "discount", "new")
SUFFIXES = ("near me", "for women", "for men", "review", "2025", "price", "online", "for beginners", "uk")


def known_groups(seed: int = 3, per_topic: int = 15) -> tuple[list[str], list[int]]:
    """Topics sharing words ("running" in three, "socks" in two) under shared modifiers, with the
    occasional typo or comparison: separable only by the topic as a whole."""
    rng = random.Random(seed)
    keywords: list[str] = []
    labels: list[int] = []
    for label, topic in enumerate(TOPICS):
        made = {topic}
        while len(made) < per_topic:
            text = topic
            if rng.random() < 0.1:
                i = rng.randrange(1, len(text) - 2)
                text = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
            shape = rng.random()
            if shape < 0.35:
                made.add(f"{rng.choice(PREFIXES)} {text}")
            elif shape < 0.7:
                made.add(f"{text} {rng.choice(SUFFIXES)}")
            elif shape < 0.9:
                made.add(f"{rng.choice(PREFIXES)} {text} {rng.choice(SUFFIXES)}")
            else:
                made.add(f"{text} vs {rng.choice(TOPICS)}")
        keywords.extend(sorted(made))
        labels.extend([label] * len(made))
    order = list(range(len(keywords)))
    rng.shuffle(order)
    return [keywords[i] for i in order], [labels[i] for i in order]


def labels_of(clusters: list[KeywordCluster], n: int) -> list[int]:
    labels = [-1] * n
    for c, cluster in enumerate(clusters):
        for i in cluster.member_indexes:
            assert labels[i] == -1, f"index {i} is in two clusters"
            labels[i] = c
    assert -1 not in labels, "an index is in no cluster"
    return labels


def assert_partition(clusters: list[KeywordCluster], n: int, max_size: int = 50) -> None:
    labels_of(clusters, n)
    assert all(1 <= len(c.member_indexes) <= max_size for c in clusters)
    names = [c.name.casefold() for c in clusters]
    assert len(set(names)) == len(names), "names repeat"
    assert all(c.name.strip() == c.name and c.name for c in clusters)
    assert all("offline" in c.description for c in clusters)


def test_no_keywords_no_clusters() -> None:
    assert cluster_keywords([]) == []


def test_one_keyword_one_cluster() -> None:
    [cluster] = cluster_keywords(["running shoes"])
    assert cluster.member_indexes == [0]
    assert cluster.name == "Running Shoes"
    assert "running shoes" in cluster.description


def test_duplicates_land_together() -> None:
    keywords = ["running shoes", "Running Shoes", "running  shoes ", "coffee grinder", "coffee grinders"]
    clusters = cluster_keywords(keywords)
    assert_partition(clusters, len(keywords))
    labels = labels_of(clusters, len(keywords))
    assert labels[0] == labels[1] == labels[2]
    assert labels[3] == labels[4] != labels[0]


def test_all_identical_keywords_are_chunked_to_the_size_cap() -> None:
    clusters = cluster_keywords(["SEO tools"] * 120, max_cluster_size=50)
    assert_partition(clusters, 120)
    assert [len(c.member_indexes) for c in clusters] == [50, 50, 20]
    assert [c.name for c in clusters] == ["SEO Tools", "SEO Tools 2", "SEO Tools 3"]


def test_non_ascii_keywords_keep_their_accents_and_match_without_them() -> None:
    keywords = [
        "café près de moi",
        "cafe pres de moi",
        "meilleur café près de moi",
        "café près de moi ouvert",
        "東京 ラーメン",
        "東京 ラーメン おすすめ",
        "straße münchen",
    ]
    clusters = cluster_keywords(keywords)
    assert_partition(clusters, len(keywords))
    labels = labels_of(clusters, len(keywords))
    assert labels[0] == labels[1] == labels[2] == labels[3]
    assert labels[4] == labels[5]
    assert clusters[labels[0]].name.startswith("Café")


def test_very_short_and_empty_keywords() -> None:
    keywords = ["a", "b", "ab", "x y", "?", "", "   ", "🙂", "vpn", "VPN"]
    clusters = cluster_keywords(keywords)
    assert_partition(clusters, len(keywords))
    labels = labels_of(clusters, len(keywords))
    assert labels[8] == labels[9]
    assert clusters[labels[9]].name == "VPN"


def test_known_groups_reach_the_quality_target() -> None:
    keywords, truth = known_groups()
    clusters = cluster_keywords(keywords)
    assert_partition(clusters, len(keywords))
    assert adjusted_rand_score(truth, labels_of(clusters, len(keywords))) >= 0.6


def test_names_are_readable_head_terms() -> None:
    keywords, _ = known_groups()
    clusters = cluster_keywords(keywords)
    names = {c.name for c in clusters}
    assert {"Running Shoes", "Trail Running Shoes", "Coffee Grinder", "Yoga Mat"} <= names
    for cluster in clusters:
        words = cluster.name.split(" (")[0].split()
        assert 1 <= len(words) <= 4
        assert all(w[:1].isupper() or not w[:1].isalpha() for w in words)
        assert cluster.description.startswith("Keywords about ")


def test_a_short_list_groups_by_topic() -> None:
    keywords = [
        "best running shoes",
        "running shoes for flat feet",
        "trail running shoes",
        "cheap running shoes",
        "marathon training plan",
        "beginner marathon training plan",
        "half marathon training plan",
        "marathon training schedule",
    ]
    volumes = [22000, 6600, 14800, 5400, 18100, 5400, 9900, 4400]
    clusters = cluster_keywords(keywords, volumes=volumes)
    assert {c.name: sorted(c.member_indexes) for c in clusters} == {
        "Running Shoes": [0, 1, 2, 3],
        "Marathon Training Plan": [4, 5, 6, 7],
    }


def test_deterministic() -> None:
    keywords, _ = known_groups(seed=11)
    assert cluster_keywords(keywords) == cluster_keywords(keywords)


def test_max_cluster_size_is_respected() -> None:
    keywords, _ = known_groups(per_topic=40)
    clusters = cluster_keywords(keywords, max_cluster_size=12)
    assert_partition(clusters, len(keywords), max_size=12)


def test_strays_attach_when_similar_and_stand_alone_when_not() -> None:
    keywords, _ = known_groups()
    keywords += ["trail runnnig shoes", "quantum chromodynamics lecture notes"]
    clusters = cluster_keywords(keywords)
    labels = labels_of(clusters, len(keywords))
    typo, stray = labels[-2], labels[-1]
    assert clusters[typo].name == "Trail Running Shoes"
    assert clusters[stray].member_indexes == [len(keywords) - 1]


def test_volumes_choose_the_name() -> None:
    keywords = [
        "apple pie",
        "apple pie recipe",
        "easy apple pie recipe",
        "best apple pie recipe",
        "apple pie recipe uk",
        "apple pies",
    ]
    volumes = [10, 9000, 50, 40, None, 5]
    [by_volume] = cluster_keywords(keywords, volumes=volumes)
    [by_text] = cluster_keywords(keywords)
    assert by_volume.name == "Apple Pie Recipe"
    assert by_text.name == "Apple Pie"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        cluster_keywords(["a"], max_cluster_size=0)
    with pytest.raises(ValueError):
        cluster_keywords(["a", "b"], volumes=[1])
