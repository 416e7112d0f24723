"""Real English and German words for the built-in tasks.

No offline package on this machine ships sentence corpora (nltk's corpora need a download),
so the built-in tasks compose sentences from these hand-checked word lists: every word is a
real word, every German phrase a grammatical translation of its English twin.
"""

from __future__ import annotations

# --- sentiment (SST-2-like) ------------------------------------------------------------
FILM_ASPECTS: tuple[str, ...] = (
    "the acting", "the plot", "the script", "the dialogue", "the music", "the ending", "the pacing",
    "the direction", "the cast", "the story", "the soundtrack", "the camera work", "the humor",
    "the editing", "the lead performance", "the final act", "the premise", "the characters",
    "the special effects", "the screenplay", "the opening scene", "the cinematography",
)
POSITIVE: tuple[str, ...] = (
    "wonderful", "moving", "brilliant", "charming", "gripping", "delightful", "superb", "clever",
    "touching", "funny", "beautiful", "remarkable", "engaging", "powerful", "fresh", "warm",
    "inventive", "thrilling", "elegant", "heartfelt", "witty", "stunning", "compelling", "lovely",
)
NEGATIVE: tuple[str, ...] = (
    "dull", "boring", "clumsy", "tedious", "shallow", "predictable", "awful", "lifeless", "bland",
    "confusing", "forgettable", "tiresome", "weak", "pointless", "messy", "stale", "silly",
    "painful", "flat", "hollow", "dreary", "sloppy", "annoying", "lazy",
)
INTENSIFIERS: tuple[str, ...] = ("", "", "truly ", "really ", "quite ", "rather ", "simply ", "utterly ")

# --- people, places and things (RTE-, BoolQ- and WebNLG-like) ---------------------------
FIRST_NAMES: tuple[str, ...] = (
    "Anna", "James", "Maria", "David", "Sarah", "Thomas", "Laura", "Michael", "Emma", "Peter",
    "Julia", "Robert", "Sophie", "Daniel", "Clara", "Martin", "Helen", "George", "Alice", "Paul",
)
LAST_NAMES: tuple[str, ...] = (
    "Smith", "Brown", "Miller", "Wilson", "Taylor", "Clark", "Walker", "Young", "King", "Baker",
    "Hill", "Green", "Adams", "Nelson", "Carter", "Mitchell", "Turner", "Parker", "Evans", "Cook",
)
OCCUPATIONS: tuple[str, ...] = (
    "teacher", "doctor", "painter", "engineer", "lawyer", "farmer", "pilot", "chemist", "writer",
    "singer", "architect", "nurse", "journalist", "baker", "carpenter", "historian",
)
#: (city, country, river) - real cities on real rivers.
CITIES: tuple[tuple[str, str, str], ...] = (
    ("London", "England", "Thames"), ("Paris", "France", "Seine"), ("Vienna", "Austria", "Danube"),
    ("Cologne", "Germany", "Rhine"), ("Prague", "Czech Republic", "Vltava"), ("Budapest", "Hungary", "Danube"),
    ("Lyon", "France", "Rhone"), ("Dresden", "Germany", "Elbe"), ("Seville", "Spain", "Guadalquivir"),
    ("Florence", "Italy", "Arno"), ("Rome", "Italy", "Tiber"), ("Warsaw", "Poland", "Vistula"),
    ("Lisbon", "Portugal", "Tagus"), ("Cairo", "Egypt", "Nile"), ("Montreal", "Canada", "Saint Lawrence"),
    ("New Orleans", "United States", "Mississippi"), ("Kyiv", "Ukraine", "Dnieper"), ("Basel", "Switzerland", "Rhine"),
    ("Hamburg", "Germany", "Elbe"), ("Belgrade", "Serbia", "Danube"), ("Bordeaux", "France", "Garonne"),
    ("Turin", "Italy", "Po"), ("Glasgow", "Scotland", "Clyde"), ("Shanghai", "China", "Huangpu"),
)
COMPANIES: tuple[str, ...] = (
    "the city hospital", "a small bank", "the national museum", "a car factory", "the local school",
    "a law firm", "the state university", "a shipping company", "the public library", "a newspaper",
)
KNOWN_FOR: tuple[str, ...] = (
    "old bridges", "museums", "markets", "cathedral", "parks", "harbor", "university", "opera house",
    "castle", "gardens", "festivals", "coffee houses", "zoo", "old town", "football club", "wine",
)
OBJECTS: tuple[str, ...] = (
    "book", "house", "car", "painting", "letter", "bicycle", "piano", "garden", "boat", "camera",
    "report", "song", "table", "bridge", "shop", "farm",
)
OBJECT_ADJECTIVES: tuple[str, ...] = ("new", "old", "small", "large", "famous", "strange", "simple", "expensive")
PAST_VERBS: tuple[tuple[str, str], ...] = (
    # (verb in the past tense, a verb that does not follow from it)
    ("bought", "sold"), ("built", "destroyed"), ("found", "lost"), ("painted", "bought"),
    ("wrote", "burned"), ("sold", "bought"), ("repaired", "broke"), ("visited", "avoided"),
)
DAYS: tuple[str, ...] = ("on Monday", "on Tuesday", "on Friday", "last week", "in May", "in the spring", "in 2010", "yesterday")

# --- translation (WMT16 de-en-like) -----------------------------------------------------
#: (English, German, grammatical gender m/f/n)
NOUNS_DE: tuple[tuple[str, str, str], ...] = (
    ("man", "Mann", "m"), ("dog", "Hund", "m"), ("teacher", "Lehrer", "m"), ("doctor", "Arzt", "m"),
    ("friend", "Freund", "m"), ("ball", "Ball", "m"), ("car", "Wagen", "m"), ("garden", "Garten", "m"),
    ("woman", "Frau", "f"), ("cat", "Katze", "f"), ("city", "Stadt", "f"), ("door", "Tür", "f"),
    ("street", "Straße", "f"), ("flower", "Blume", "f"), ("letter", "Brief", "m"), ("lamp", "Lampe", "f"),
    ("child", "Kind", "n"), ("house", "Haus", "n"), ("book", "Buch", "n"), ("picture", "Bild", "n"),
    ("horse", "Pferd", "n"), ("window", "Fenster", "n"), ("bread", "Brot", "n"), ("boat", "Boot", "n"),
)
#: Subjects must be able to act.
ANIMATE_DE: frozenset[str] = frozenset({"man", "dog", "teacher", "doctor", "friend", "woman", "cat", "child", "horse"})
ADJECTIVES_DE: tuple[tuple[str, str], ...] = (
    ("big", "groß"), ("small", "klein"), ("old", "alt"), ("young", "jung"), ("red", "rot"),
    ("new", "neu"), ("beautiful", "schön"), ("black", "schwarz"), ("white", "weiß"), ("green", "grün"),
    ("tired", "müde"), ("happy", "froh"),
)
VERBS_DE: tuple[tuple[str, str], ...] = (
    ("sees", "sieht"), ("finds", "findet"), ("buys", "kauft"), ("loves", "liebt"), ("paints", "malt"),
    ("carries", "trägt"), ("hears", "hört"), ("needs", "braucht"), ("draws", "zeichnet"), ("washes", "wäscht"),
)
ADVERBS_DE: tuple[tuple[str, str], ...] = (
    ("", ""), ("today", "heute"), ("tomorrow", "morgen"), ("again", "wieder"), ("often", "oft"),
    ("in the evening", "am Abend"), ("every day", "jeden Tag"),
)
