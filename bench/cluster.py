"""Benchmark: the offline keyword clustering (``tools.ai.clustering.cluster_keywords``).

Run from the repo root::

    python bench/cluster.py [--sizes 10000 50000] [--seed 7] [--density 0.5] [--heads 1.0]
                            [--runs 1] [--skip-baselines]

It generates keyword sets whose true groups are known, clusters them, and prints the wall time and
the adjusted Rand index (ARI) against the true groups, next to two baselines run on the same data:
grouping by first word (naive) and TF-IDF + TruncatedSVD + MiniBatchKMeans given the true number of
groups (the textbook pipeline, with an advantage ours does not get). Then pass/fail against the
targets: 10k keywords in <= 3 s, 50k in <= 20 s, ARI >= 0.6. Exit status 1 if a target is missed.

The generator is meant to be hard the way real keyword lists are hard, not to flatter the algorithm.
A group is one topic "<qualifier> <noun>" of a domain ("trail running shoes" in footwear), and each
domain uses ``--density`` (default half) of its 20 x 12 qualifier-noun grid, so every qualifier and
every noun recurs in several groups ("trail running socks", "leather shoes"): no single word
identifies a group. All groups draw on the same modifiers (best, near me, 2025, for beginners,
cities, brands, questions, "vs" comparisons with a sibling topic) and on their domain's facets
("for flat feet"), and keywords come with singular/plural swaps, reordering ("shoes for trail
running") and typos. Group sizes are long-tailed (2-48). A bigger set covers more domains at the
same density, as a bigger site covers more categories. 2% of keywords are unrelated one-off
queries, each its own true group. Each group's bare head term is listed with the highest volume
unless ``--heads`` says otherwise (``--heads 0``: long-tail keywords only).
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import scipy.sparse as sp  # noqa: E402
from sklearn.cluster import MiniBatchKMeans  # noqa: E402
from sklearn.decomposition import TruncatedSVD  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402
from sklearn.preprocessing import normalize  # noqa: E402

from tools.ai.clustering import KeywordCluster, cluster_keywords  # noqa: E402

TARGET_SECONDS = {10_000: 3.0, 50_000: 20.0}
TARGET_ARI = 0.6

# --- a synthetic keyword set with known groups --------------------------------------------------

# One block per domain: its qualifiers (q), nouns (n) and facets (f). A topic is "<qualifier> <noun>";
# facets are sub-intents people attach to any topic of the domain ("for flat feet").
_DOMAIN_TEXT = """
footwear
  q: running, trail running, hiking, leather, waterproof, kids, wide fit, orthopedic, minimalist, vegan,
     winter, work, tennis, basketball, walking, steel toe, suede, platform, barefoot, golf
  n: shoes, boots, sneakers, sandals, socks, insoles, slippers, trainers, loafers, laces, heels, clogs
  f: flat feet, wide feet, plantar fasciitis, high arches, bunions, standing all day, sizing, how to clean,
     waterproofing, break in
coffee
  q: espresso, drip, pour over, cold brew, french press, decaf, organic, single origin, turkish, iced,
     instant, moka pot, specialty, arabica, burr, manual, ethiopian, dark roast, capsule, latte
  n: coffee, coffee maker, coffee grinder, coffee beans, machine, filter, kettle, cups, scale, frother,
     tamper, pods
  f: ratio, grind size, recipe, descaling, caffeine content, how to make, cleaning, subscription, at home,
     for office
fitness
  q: yoga, pilates, crossfit, home, adjustable, resistance, kettlebell, cardio, strength, hiit, rowing,
     spin, bodyweight, foam, boxing, calisthenics, barre, stretching, powerlifting, mobility
  n: mat, workout, dumbbells, bands, bench, machine, program, class, roller, gloves, rack, app
  f: weight loss, for seniors, at home, for back pain, schedule, beginner plan, 30 day challenge,
     calories burned, muscle gain, apartment
software
  q: crm, accounting, project management, payroll, invoicing, email marketing, seo, inventory, hr,
     helpdesk, password, backup, video editing, photo editing, scheduling, survey, chat, analytics,
     ecommerce, time tracking
  n: software, app, tool, platform, plugin, template, api, dashboard, extension, system, service, suite
  f: pricing, free trial, open source, integration, for startups, tutorial, setup, for agencies,
     self hosted, migration
finance
  q: mortgage, car, student, personal, business, home equity, payday, travel, cashback, secured, life,
     pet, renters, health, dental, boat, motorcycle, bridge, debt consolidation, joint
  n: loan, insurance, credit card, calculator, rates, refinance, quote, account, lender, broker, policy,
     advisor
  f: interest rate, bad credit, eligibility, how to apply, fees, tax deductible, comparison,
     for self employed, no deposit, pros and cons
home improvement
  q: kitchen, bathroom, garden, patio, garage, basement, roof, window, floor, solar, smart, led, outdoor,
     attic, deck, fence, driveway, bedroom, shed, pool
  n: repair, renovation, lights, cleaner, cabinets, tiles, paint, heater, insulation, installation,
     doors, storage
  f: cost per square foot, diy, ideas, permit, contractor, small space, on a budget, before and after,
     mistakes, timeline
pets
  q: dog, cat, puppy, kitten, senior dog, rabbit, hamster, parrot, horse, aquarium, large breed,
     indoor cat, raw, grain free, guinea pig, ferret, small dog, senior cat, reptile, chicken
  n: food, treats, toys, bed, crate, shampoo, vet, grooming, training, harness, insurance, litter
  f: sensitive stomach, allergies, weight gain, how much to feed, ingredients, recall, homemade,
     for anxiety, subscription, vet recommended
travel
  q: paris, tokyo, bali, iceland, new zealand, rome, cancun, lisbon, dubai, thailand, peru, croatia,
     morocco, vietnam, barcelona, amsterdam, prague, maldives, santorini, kyoto
  n: hotels, tours, flights, itinerary, travel guide, resorts, hostels, car rental, cruises, restaurants,
     apartments, day trips
  f: in winter, with kids, on a budget, 7 days, honeymoon, visa requirements, best time to visit, solo,
     luxury, from london
electronics
  q: gaming, wireless, noise cancelling, 4k, portable, curved, mechanical, bluetooth, usb c, ultrawide,
     budget, refurbished, waterproof, studio, rgb, ergonomic, foldable, oled, compact, vertical
  n: headphones, monitor, keyboard, mouse, speaker, laptop, webcam, microphone, charger, tablet,
     projector, router
  f: for mac, for streaming, battery life, setup, latency, drivers, not working, specs,
     for work from home, warranty
supplements
  q: vitamin d, protein, collagen, magnesium, omega 3, probiotic, iron, zinc, melatonin, creatine, fiber,
     keto, vegan, electrolyte, biotin, ashwagandha, turmeric, vitamin c, calcium, multivitamin
  n: supplements, powder, gummies, tablets, drink, diet, deficiency, test, capsules, shots, bars, oil
  f: side effects, dosage, benefits, for women, during pregnancy, for kids, interactions,
     best time to take, symptoms, natural sources
cars
  q: electric, hybrid, used, diesel, suv, pickup, convertible, classic, lease, family, off road, luxury,
     compact, sports, tesla, toyota, ford, bmw, honda, jeep
  n: cars, tires, battery, brakes, oil change, detailing, warranty, parts, seat covers, dash cam,
     roof rack, charger
  f: maintenance schedule, resale value, mpg, reliability, financing, replacement cost, problems,
     for winter, towing capacity, recall
skincare
  q: retinol, vitamin c, hyaluronic, sunscreen, anti aging, acne, korean, organic, curly hair, men's,
     matte, waterproof, hydrating, exfoliating, clay, charcoal, tinted, fragrance free, night, under eye
  n: serum, moisturizer, cleanser, mask, foundation, mascara, shampoo, conditioner, cream, toner,
     lipstick, primer
  f: for oily skin, for dry skin, for sensitive skin, routine, dupes, drugstore, how to apply,
     ingredients, over 40, dermatologist recommended
gardening
  q: tomato, rose, herb, vegetable, succulent, orchid, lawn, raised bed, hydroponic, indoor, organic,
     balcony, fruit tree, lavender, strawberry, cactus, bonsai, hedge, bulb, wildflower
  n: seeds, fertilizer, soil, pots, planter, garden, care, pruning, pests, watering, compost, grow lights
  f: in shade, in containers, when to plant, yellow leaves, companion planting, zone 5, overwintering,
     from cuttings, how often to water, in clay soil
baby
  q: newborn, toddler, baby, infant, twin, preemie, breastfeeding, organic, convertible, travel, eco,
     sleep, teething, bottle, potty, montessori, wooden, sensory, bath, swaddle
  n: stroller, car seat, crib, monitor, carrier, bottles, formula, diapers, toys, blanket, high chair,
     books
  f: safety rating, age range, recall, registry, how to install, weight limit, for small apartments,
     for grandparents, checklist, first year
cookware
  q: air fryer, slow cooker, instant pot, sous vide, cast iron, nonstick, ceramic, copper, induction,
     stainless steel, convection, pressure, bread, rice, smoothie, waffle, pizza, carbon steel, grill,
     dutch oven
  n: pan, pot, cooker, maker, oven, blender, cookbook, accessories, liners, lid, set, knife
  f: temperature chart, cooking times, seasoning, dishwasher safe, induction compatible, energy use,
     for family of 4, how to clean, first use, replacement parts
camping
  q: backpacking, ultralight, family, winter, car camping, solo, 4 season, inflatable, down, synthetic,
     hammock, rooftop, kayak, fishing, climbing, bikepacking, beach, desert, alpine, survival
  n: tent, sleeping bag, backpack, stove, lantern, water filter, jacket, pad, cooler, chair, knife, gps
  f: weight, packed size, setup time, temperature rating, for rain, for cold weather, checklist, rental,
     maintenance, repair kit
education
  q: online, free, accredited, part time, evening, summer, coding, nursing, mba, law, data science,
     graphic design, spanish, english, music, math, psychology, teacher, cybersecurity, ux
  n: course, degree, bootcamp, certificate, classes, tutor, school, program, textbook, exam prep,
     scholarship, workshop
  f: entry requirements, tuition, salary after, duration, accreditation, job placement,
     for working adults, syllabus, application deadline, worth it
legal
  q: divorce, immigration, personal injury, criminal, family, estate, employment, bankruptcy,
     real estate, dui, patent, trademark, tenant, medical malpractice, workers comp, tax, contract,
     custody, probate, business
  n: lawyer, attorney, law firm, paralegal, consultation, forms, court, settlement, mediation, fees,
     documents, template
  f: free consultation, how to find, statute of limitations, what to expect, retainer, pro bono,
     process, timeline, success rate, questions to ask
property
  q: condo, townhouse, beach house, apartment, studio, duplex, commercial, vacation, luxury, foreclosure,
     new build, tiny house, mobile home, farm, lake house, investment, rental, loft, waterfront,
     senior living
  n: for sale, for rent, listings, prices, agent, appraisal, inspection, market, auction, lease,
     management, valuation
  f: down payment, hoa fees, closing costs, market trends, first time buyer, negotiation,
     square footage, school district, property tax, floor plans
gaming
  q: ps5, xbox, nintendo switch, pc, steam deck, vr, retro, mobile, rpg, fps, strategy, horror, co op,
     open world, indie, racing, puzzle, survival, simulation, sports
  n: games, controller, headset, console, walkthrough, mods, cheats, deals, chair, bundle, emulator,
     tournament
  f: release date, system requirements, multiplayer, best settings, tier list, beginner tips,
     patch notes, how many players, save file, trophies
events
  q: wedding, birthday, baby shower, graduation, anniversary, retirement, engagement, bridal shower,
     corporate, halloween, christmas, kids party, outdoor, rustic, boho, beach wedding, vintage, themed,
     surprise, sweet 16
  n: invitations, cake, decorations, venue, dress, photographer, favors, catering, playlist, speech,
     planner, games
  f: budget, checklist, etiquette, timeline, diy, themes, how far in advance, wording, cost breakdown,
     last minute
music
  q: acoustic, electric, bass, classical, ukulele, digital, vintage, left handed, kids, jazz, beginner,
     travel, 12 string, semi hollow, nylon, steel string, upright, drum, violin, piano
  n: guitar, lessons, strings, amp, pedals, tuner, case, sheet music, chords, capo, stand, pickups
  f: how to tune, for small hands, action height, practice routine, songs, string gauge, setup,
     intonation, scales, maintenance
clothing
  q: linen, denim, wool, cashmere, silk, plus size, petite, maternity, oversized, cropped, high waisted,
     sustainable, thrift, formal, casual, summer, winter, workwear, athleisure, vintage
  n: dress, jeans, jacket, sweater, shirt, trousers, skirt, coat, blazer, shorts, hoodie, suit
  f: how to style, outfit ideas, size guide, how to wash, for body type, capsule wardrobe, shrinking,
     ironing, tailoring, color combinations
jewelry
  q: gold, silver, diamond, pearl, rose gold, platinum, sterling, minimalist, personalized, engagement,
     vintage, birthstone, titanium, stainless steel, moissanite, emerald, sapphire, tennis, charm, men's
  n: ring, necklace, bracelet, earrings, watch, chain, pendant, anklet, cufflinks, brooch, band, set
  f: how to clean, ring size, tarnish, resizing, appraisal, hallmark, allergies, layering, gift box, care
energy
  q: solar, wind, geothermal, heat pump, off grid, home battery, ev, tankless, smart, portable, propane,
     wood, pellet, gas, electric, hybrid, infrared, radiant, ductless, whole house
  n: system, generator, panels, installer, water heater, inverter, thermostat, furnace, boiler, rebate,
     charger, meter
  f: efficiency rating, payback period, tax credit, sizing, installation cost, maintenance, lifespan,
     noise level, permits, financing options
recipes
  q: vegan, keto, gluten free, chicken, beef, salmon, pasta, chocolate, banana, sourdough, low carb,
     high protein, mediterranean, thai, mexican, indian, italian, paleo, dairy free, vegetarian
  n: recipes, soup, salad, cake, bread, curry, sauce, cookies, meal prep, smoothie, casserole, snacks
  f: easy, quick, for dinner, calories, for kids, make ahead, one pot, healthy, from scratch, for two
"""


def _words(text: str) -> tuple[str, ...]:
    """Comma-separated phrases: keeps the vocabulary readable in a few lines."""
    return tuple(w.strip() for w in text.split(",") if w.strip())


def _parse_domains(text: str) -> dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]:
    fields: dict[str, dict[str, str]] = {}
    name = key = ""
    for line in text.strip().splitlines():
        stripped = line.strip()
        if not line.startswith(" "):
            name = stripped
            fields[name] = {}
        elif stripped[1:2] == ":":
            key = stripped[0]
            fields[name][key] = stripped[2:]
        else:
            fields[name][key] += "," + stripped
    return {d: (_words(f["q"]), _words(f["n"]), _words(f["f"])) for d, f in fields.items()}


_DOMAINS = _parse_domains(_DOMAIN_TEXT)
_PREFIXES = _words(
    "best, cheap, top, buy, affordable, top rated, discount, new, professional, premium, popular"
)
_SUFFIXES = _words(
    "near me, for beginners, review, reviews, price, cost, deals, sale, online, uk, usa, 2024, 2025, guide,"
    "alternatives, reddit, for women, for men, under 100, comparison, brands, ideas, recommended"
)
_QUESTIONS = _words(
    "how to choose, what is the best, are, do i need, where to buy, how much are, is it worth buying,"
    "why are, when to replace, how long do"
)
_CITIES = _words(
    "london, new york, chicago, austin, berlin, sydney, toronto, manchester, denver, seattle, miami"
)
_BRANDS = _words("acme, globex, initech, umbrella, hooli, stark, wayne, wonka, nike, amazon, ikea, costco")
_NOISE_WORDS = _words(
    "weather, tomorrow, lyrics, score, movie, times, login, meaning, translate, jobs, map, song, quotes,"
    "calendar, news, holiday, stock, election, football, traffic, horoscope, minecraft, netflix, zip code,"
    "population, synonym, definition, tickets, schedule today, live stream, age, height, net worth, wife,"
    "husband, episode, season, cast, trailer, chords, tabs, font, wallpaper, meme, emoji, airport, bus,"
    "train, ferry, hospital, library, museum, post office, pharmacy, bank holiday, time zone, exchange rate,"
    "lottery results, pokemon, taylor swift, premier league, nba, world cup, olympics, formula 1, super bowl,"
    "eclipse, earthquake, hurricane, snow day, school closings"
)


@dataclass(frozen=True)
class Topic:
    domain: str
    qualifier: str
    noun: str

    @property
    def phrase(self) -> str:
        return f"{self.qualifier} {self.noun}"


@dataclass
class KeywordSet:
    """Keywords with their true group labels and search volumes (``None``: unknown)."""

    keywords: list[str]
    labels: list[int]
    volumes: list[int | None]
    groups: int
    domains: int


def _other_number(noun: str) -> str:
    """The singular of a plural noun, the plural of a singular one (regular English forms only)."""
    if noun.endswith("ies"):
        return noun[:-3] + "y"
    if noun.endswith(("ches", "shes", "sses", "xes")):
        return noun[:-2]
    if noun.endswith("s") and not noun.endswith("ss"):
        return noun[:-1]
    if noun.endswith(("ch", "sh", "ss", "x")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _typo(rng: random.Random, text: str) -> str:
    """One keyboard slip in a word of at least four letters: a swap, a drop or a double."""
    words = text.split()
    long_ones = [i for i, w in enumerate(words) if len(w) >= 4]
    if not long_ones:
        return text
    i = rng.choice(long_ones)
    w = words[i]
    j = rng.randrange(1, len(w) - 1)
    kind = rng.random()
    if kind < 0.4:
        w = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    elif kind < 0.7:
        w = w[:j] + w[j + 1 :]
    else:
        w = w[:j] + w[j] + w[j:]
    words[i] = w
    return " ".join(words)


def _topic_text(rng: random.Random, topic: Topic) -> str:
    """How a searcher names the topic: mostly verbatim, sometimes singular, reordered or misspelt."""
    words = topic.noun.split()
    roll = rng.random()
    if roll < 0.15:
        text = " ".join([topic.qualifier, *words[:-1], _other_number(words[-1])])
    elif roll < 0.22:
        text = f"{topic.noun} for {topic.qualifier}"
    else:
        text = topic.phrase
    return _typo(rng, text) if rng.random() < 0.06 else text


def _keyword(rng: random.Random, topic: Topic, facets: tuple[str, ...], rivals: list[Topic]) -> str:
    t = _topic_text(rng, topic)
    shape = rng.random()
    if shape < 0.16:
        return f"{rng.choice(_PREFIXES)} {t}"
    if shape < 0.34:
        return f"{t} {rng.choice(_SUFFIXES)}"
    if shape < 0.46:
        return f"{rng.choice(_PREFIXES)} {t} {rng.choice(_SUFFIXES)}"
    if shape < 0.60:
        return f"{t} {rng.choice(facets)}"
    if shape < 0.70:
        return f"{rng.choice(_QUESTIONS)} {t}"
    if shape < 0.77:
        return f"{t} {rng.choice(_CITIES)}"
    if shape < 0.84:
        return f"{rng.choice(_BRANDS)} {t}"
    if shape < 0.90:
        return f"{t} vs {rng.choice(rivals).phrase}"
    if shape < 0.95:
        return f"{rng.choice(_PREFIXES)} {t} {rng.choice(facets)}"
    return f"{t} {rng.choice(facets)} {rng.choice(_SUFFIXES)}"


def _group(
    rng: random.Random, topic: Topic, rivals: list[Topic], size: int, seen: set[str], head: bool
) -> list[tuple[str, int | None]]:
    """``size`` keywords on the topic: its bare head term first when ``head`` (normally the group's
    highest-volume query), the rest long-tail variants."""
    facets = _DOMAINS[topic.domain][2]
    rows: list[tuple[str, int | None]] = []
    first = [topic.phrase] if head else []
    for keyword in first + [_keyword(rng, topic, facets, rivals) for _ in range(size * 20)]:
        if len(rows) == size:
            break
        if keyword not in seen:
            seen.add(keyword)
            if head and not rows:
                rows.append((keyword, int(rng.lognormvariate(8, 1.2))))
            else:
                rows.append((keyword, None if rng.random() < 0.05 else int(rng.lognormvariate(4, 1.5))))
    return rows


def _group_size(rng: random.Random, mean: float) -> int:
    """Long-tailed like real clusters: many groups of 5-20 keywords, a few of 40+."""
    while True:
        size = round(rng.lognormvariate(math.log(mean) - 0.18, 0.6))
        if 2 <= size <= 48:
            return size


def _noise(rng: random.Random) -> str:
    return " ".join(rng.sample(_NOISE_WORDS, rng.randint(1, 3)))


def _topic_stream(rng: random.Random, density: float) -> Iterator[tuple[Topic, list[Topic]]]:
    """Topics domain by domain, ``density`` of each domain's qualifier x noun grid, with their rivals.

    A bigger keyword set covers more domains at the same density, as a bigger site covers more
    categories; so every word is shared by several groups at every size."""
    for domain in rng.sample(list(_DOMAINS), len(_DOMAINS)):
        quals, nouns, _ = _DOMAINS[domain]
        grid = [Topic(domain, q, noun) for q in quals for noun in nouns]
        chosen = rng.sample(grid, round(len(grid) * density))
        for topic in chosen:
            yield topic, [t for t in chosen if t != topic]


def make_keyword_set(
    n: int,
    seed: int = 7,
    *,
    mean_group: float = 20.0,
    noise: float = 0.02,
    density: float = 0.5,
    heads: float = 1.0,
) -> KeywordSet:
    """``n`` unique keywords in known groups (one topic each, plus one-off noise queries), shuffled.

    ``heads`` is the share of groups whose bare head term ("trail running shoes") is in the list."""
    rng = random.Random(seed)
    topical = n - round(n * noise)
    rows: list[tuple[str, int, int | None]] = []
    seen: set[str] = set()
    domains: set[str] = set()
    label = 0
    for topic, rivals in _topic_stream(rng, density):
        if len(rows) >= topical:
            break
        size = min(_group_size(rng, mean_group), topical - len(rows))
        head = rng.random() < heads
        rows.extend((kw, label, vol) for kw, vol in _group(rng, topic, rivals, size, seen, head))
        domains.add(topic.domain)
        label += 1
    if len(rows) < topical:
        raise SystemExit(f"not enough topics for {n} keywords; lower --density or raise mean group size")
    while len(rows) < n:
        keyword = _noise(rng)
        if keyword not in seen:
            seen.add(keyword)
            rows.append((keyword, label, int(rng.lognormvariate(5, 2))))
            label += 1
    rng.shuffle(rows)
    keywords, labels, volumes = (list(col) for col in zip(*rows, strict=True))
    return KeywordSet(keywords, labels, volumes, label, len(domains))


# --- baselines -----------------------------------------------------------------------------------


def first_word_baseline(keywords: list[str]) -> list[int]:
    """Naive: one group per first word."""
    ids: dict[str, int] = {}
    return [ids.setdefault((k.split() or [""])[0], len(ids)) for k in keywords]


def tfidf_kmeans_baseline(keywords: list[str], k: int) -> list[int]:
    """The textbook pipeline, and told the true number of groups: TF-IDF word 1-2-grams + char_wb
    3-5-grams, TruncatedSVD to 128 dims, L2-normalised, MiniBatchKMeans(k)."""
    words = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2)
    features = sp.hstack([normalize(v.fit_transform(keywords)) for v in (words, chars)], format="csr")
    reduced = normalize(TruncatedSVD(128, random_state=0).fit_transform(features))
    return MiniBatchKMeans(k, random_state=0, n_init=1, batch_size=4096).fit_predict(reduced).tolist()


# --- running -------------------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    seconds: float
    ari: float
    clusters: int


def timed(label: str, labels_of: Callable[[], list[int]], truth: list[int]) -> Result:
    gc.collect()
    start = time.perf_counter()
    labels = labels_of()
    seconds = time.perf_counter() - start
    return Result(label, seconds, adjusted_rand_score(truth, labels), len(set(labels)))


def checked_labels(clusters: list[KeywordCluster], n: int, max_size: int = 50) -> list[int]:
    """Cluster number per keyword, after checking the contract: each index exactly once, sizes
    within the cap, names unique."""
    labels = [-1] * n
    for c, cluster in enumerate(clusters):
        for i in cluster.member_indexes:
            if labels[i] != -1:
                raise AssertionError(f"keyword {i} is in two clusters")
            labels[i] = c
    if -1 in labels:
        raise AssertionError("some keywords are in no cluster")
    if any(len(c.member_indexes) > max_size for c in clusters):
        raise AssertionError("a cluster exceeds max_cluster_size")
    if len({c.name.casefold() for c in clusters}) != len(clusters):
        raise AssertionError("cluster names are not unique")
    return labels


def bench_size(data: KeywordSet, runs: int, baselines: bool) -> Result:
    clusters: list[KeywordCluster] = []

    def ours() -> list[int]:
        clusters[:] = cluster_keywords(data.keywords, volumes=data.volumes)
        return checked_labels(clusters, len(data.keywords))

    best = min(
        (timed("ours: cluster_keywords", ours, data.labels) for _ in range(runs)), key=lambda r: r.seconds
    )
    results = [best]
    if baselines:
        results.append(timed("baseline: first word", lambda: first_word_baseline(data.keywords), data.labels))
        true_k = "baseline: TF-IDF+SVD+MiniBatchKMeans, true k"
        results.append(timed(true_k, lambda: tfidf_kmeans_baseline(data.keywords, data.groups), data.labels))
    for r in results:
        print(f"  {r.label:<46} {r.seconds:7.2f}s  ARI {r.ari:.3f}  {r.clusters:>6,} clusters")
    by_keyword = {i: c for c in clusters for i in c.member_indexes}
    for i in range(3):
        c = by_keyword[i]
        print(
            f"    e.g. {data.keywords[i]!r} -> {c.name!r} ({len(c.member_indexes)} keywords): {c.description}"
        )
    return best


def verdicts(n: int, best: Result) -> list[tuple[str, bool]]:
    checks = [(f"ARI {best.ari:.3f} >= {TARGET_ARI}", best.ari >= TARGET_ARI)]
    if n in TARGET_SECONDS:
        checks.append(
            (f"time {best.seconds:.2f}s <= {TARGET_SECONDS[n]:g}s", best.seconds <= TARGET_SECONDS[n])
        )
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--density", type=float, default=0.5, help="share of each domain's topic grid in use")
    parser.add_argument(
        "--heads", type=float, default=1.0, help="share of groups listing their bare head term"
    )
    parser.add_argument(
        "--runs", type=int, default=1, help="time our clustering this many times, keep the best"
    )
    parser.add_argument("--skip-baselines", action="store_true")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    failures = []
    for n in args.sizes:
        data = make_keyword_set(n, args.seed, density=args.density, heads=args.heads)
        print(f"\n{n:,} keywords, {data.groups:,} true groups ({data.domains} domains, seed {args.seed})")
        for text, ok in verdicts(n, bench_size(data, args.runs, not args.skip_baselines)):
            print(f"  {'PASS' if ok else 'FAIL'}  {text}")
            if not ok:
                failures.append(f"{n:,}: {text}")
    print("\nall targets met" if not failures else "\nFAILED: " + "; ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
