"""Real English words the synthetic generator builds titles and entity names from."""

from __future__ import annotations

# category -> (subcategories, topic nouns). Categories and subcategories follow MIND's.
TOPICS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "news": (
        ("newsus", "newspolitics", "newsworld", "newscrime"),
        ("election", "senate", "court", "policy", "budget", "protest", "investigation", "governor",
         "lawsuit", "vote", "campaign", "border", "summit", "treaty", "verdict", "police", "ruling", "bill"),
    ),
    "sports": (
        ("football_nfl", "basketball_nba", "baseball_mlb", "golf", "soccer"),
        ("season", "coach", "playoff", "trade", "injury", "quarterback", "draft", "championship", "record",
         "rookie", "stadium", "victory", "defeat", "tournament", "contract", "roster", "league", "comeback"),
    ),
    "finance": (
        ("markets", "personalfinance", "companies", "realestate"),
        ("stocks", "earnings", "merger", "shares", "investors", "profit", "bank", "mortgage", "rates",
         "inflation", "savings", "retirement", "market", "startup", "layoffs", "dividend", "housing", "deal"),
    ),
    "lifestyle": (
        ("lifestyleroyals", "lifestylebuzz", "shop-holidays", "lifestyleparenting"),
        ("wedding", "fashion", "family", "holiday", "gift", "style", "home", "garden", "royal",
         "parenting", "design", "party", "tradition", "makeover", "pets", "etiquette", "birthday", "baby"),
    ),
    "health": (
        ("medical", "wellness", "nutrition", "fitness"),
        ("vaccine", "diet", "hospital", "study", "doctors", "sleep", "workout", "virus", "treatment",
         "cancer", "heart", "therapy", "patients", "clinic", "outbreak", "weight", "symptoms", "research"),
    ),
    "entertainment": (
        ("celebrity", "entertainment-celebrity", "awards"),
        ("premiere", "award", "actor", "singer", "scandal", "interview", "gala", "divorce", "romance",
         "tribute", "red carpet", "reunion", "memoir", "festival", "comedian", "sequel", "casting", "fans"),
    ),
    "travel": (
        ("traveltrip", "travelnews", "travelarticle"),
        ("flight", "airport", "hotel", "beach", "cruise", "resort", "passport", "island", "vacation",
         "airline", "destination", "road trip", "museum", "journey", "tourists", "landmark", "trail", "luggage"),
    ),
    "foodanddrink": (
        ("recipes", "restaurants", "foodnews"),
        ("recipe", "restaurant", "chef", "dinner", "pizza", "dessert", "coffee", "wine", "burger",
         "bakery", "menu", "kitchen", "brunch", "cookies", "barbecue", "soup", "salad", "holiday meal"),
    ),
    "autos": (
        ("autosnews", "autosreview", "autosenthusiasts"),
        ("truck", "electric car", "recall", "engine", "sedan", "pickup", "dealer", "horsepower", "crash test",
         "battery", "motor show", "hybrid", "factory", "roadster", "safety rating", "mileage", "prototype", "suv"),
    ),
    "weather": (
        ("weathertopstories", "weathernews"),
        ("storm", "snow", "hurricane", "flood", "heat wave", "forecast", "tornado", "wildfire", "rain",
         "freeze", "drought", "winds", "blizzard", "thunderstorm", "temperatures", "frost", "fog", "warning"),
    ),
    "music": (
        ("musicnews", "music-celebrity"),
        ("album", "tour", "concert", "song", "band", "grammy", "single", "playlist", "rapper",
         "guitarist", "festival lineup", "music video", "record label", "ballad", "duet", "encore", "chart", "vinyl"),
    ),
    "tv": (
        ("tvnews", "tv-celebrity"),
        ("series", "episode", "finale", "showrunner", "season premiere", "spinoff", "host", "network",
         "ratings", "reality show", "sitcom", "talk show", "cast", "streaming", "pilot", "renewal", "cliffhanger", "drama"),
    ),
    "movies": (
        ("movienews", "movies-celebrity"),
        ("box office", "trailer", "director", "blockbuster", "film", "studio", "remake", "oscar",
         "screenplay", "franchise", "documentary", "cinema", "animation", "superhero", "thriller", "release", "critics", "biopic"),
    ),
}

VERBS_PRESENT = (
    "wins", "loses", "faces", "announces", "reveals", "defends", "rejects", "signs", "launches", "unveils",
    "slams", "praises", "joins", "leaves", "eyes", "backs", "warns of", "prepares for", "weighs", "confirms",
    "denies", "celebrates", "mourns", "tops", "breaks", "delays", "cancels", "returns to", "targets", "questions",
)
VERBS_PAST = (
    "won", "lost", "faced", "announced", "revealed", "defended", "rejected", "signed", "launched", "unveiled",
    "slammed", "praised", "joined", "left", "backed", "confirmed", "denied", "celebrated", "topped", "delayed",
)
ADJECTIVES = (
    "new", "surprising", "major", "stunning", "historic", "bold", "quiet", "controversial", "final", "early",
    "late", "big", "record", "rare", "strange", "emotional", "dramatic", "unexpected", "fresh", "tough",
    "massive", "secret", "first", "latest", "crucial", "brilliant", "risky", "costly", "famous", "honest",
)
OPENERS = ("Why", "How", "What", "When")
CONNECTORS = ("after", "before", "amid", "despite", "during", "over")

FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
    "Christopher", "Lisa", "Daniel", "Nancy", "Matthew", "Betty", "Anthony", "Sandra", "Mark", "Margaret",
    "Donald", "Ashley", "Steven", "Kimberly", "Andrew", "Emily", "Paul", "Donna", "Joshua", "Michelle",
    "Kenneth", "Carol", "Kevin", "Amanda", "Brian", "Melissa", "George", "Deborah", "Timothy", "Stephanie",
    "Ronald", "Rebecca", "Jason", "Sharon", "Edward", "Laura", "Jeffrey", "Cynthia", "Ryan", "Dorothy",
    "Jacob", "Amy", "Gary", "Kathleen", "Nicholas", "Angela", "Eric", "Shirley", "Jonathan", "Emma",
    "Stephen", "Brenda", "Larry", "Pamela", "Justin", "Nicole", "Scott", "Anna", "Brandon", "Samantha",
    "Benjamin", "Katherine", "Samuel", "Christine", "Gregory", "Debra", "Alexander", "Rachel", "Patrick",
    "Carolyn", "Frank", "Janet", "Raymond", "Maria", "Jack", "Olivia", "Dennis", "Heather", "Jerry", "Helen",
    "Tyler", "Catherine", "Aaron", "Diane", "Jose", "Julie", "Adam", "Victoria", "Nathan", "Joyce",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green",
    "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez",
    "Phillips", "Evans", "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart",
    "Morris", "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson",
    "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson", "Brooks",
    "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price", "Alvarez", "Castillo",
    "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jimenez", "Powell", "Jenkins", "Perry", "Russell",
    "Sullivan", "Bell", "Coleman", "Butler", "Henderson", "Barnes", "Gonzales", "Fisher", "Vasquez", "Simmons",
    "Romero", "Jordan", "Patterson", "Alexander", "Hamilton", "Graham", "Reynolds", "Griffin", "Wallace",
    "Moreno", "West", "Cole", "Hayes", "Bryant", "Herrera", "Gibson", "Ellis", "Tran", "Medina", "Aguilar",
    "Stevens", "Murray", "Ford", "Castro", "Marshall", "Owens", "Harrison", "Fernandez", "McDonald", "Woods",
)
PLACES = (
    "Springfield", "Riverside", "Fairview", "Madison", "Georgetown", "Clinton", "Arlington", "Salem",
    "Franklin", "Greenville", "Bristol", "Ashland", "Burlington", "Manchester", "Milton", "Newport", "Oxford",
    "Dover", "Hudson", "Kingston", "Lexington", "Marion", "Mount Vernon", "Auburn", "Dayton", "Lancaster",
    "Clayton", "Jackson", "Winchester", "Cleveland", "Chester", "Portland", "Richmond", "Denver", "Boston",
    "Phoenix", "Austin", "Seattle", "Atlanta", "Miami", "Houston", "Dallas", "Chicago", "Detroit", "Memphis",
    "Nashville", "Orlando", "Tampa", "Omaha", "Tulsa", "Albany", "Raleigh", "Savannah", "Boise", "Reno",
    "Tucson", "Fresno", "Spokane", "Wichita", "Buffalo", "Toledo", "Anchorage", "Honolulu", "Charleston",
    "Pittsburgh", "Baltimore", "Sacramento", "Louisville", "Milwaukee", "Cincinnati", "Lincoln", "Topeka",
)
ORG_SUFFIXES: dict[str, tuple[str, ...]] = {
    "news": ("Council", "Commission", "Department", "Party", "Court", "Agency"),
    "sports": ("Rangers", "Eagles", "Tigers", "Hawks", "Giants", "Pioneers", "Comets", "Wolves"),
    "finance": ("Bank", "Capital", "Holdings", "Partners", "Group", "Securities"),
    "lifestyle": ("Collective", "House", "Boutique", "Foundation", "Society"),
    "health": ("Clinic", "Medical Center", "Institute", "Health", "Labs"),
    "entertainment": ("Studios", "Pictures", "Media", "Academy", "Records"),
    "travel": ("Airlines", "Resorts", "Cruises", "Airport", "Tours"),
    "foodanddrink": ("Kitchen", "Bakery", "Brewing", "Grill", "Farms"),
    "autos": ("Motors", "Automotive", "Trucks", "Engineering", "Works"),
    "weather": ("Weather Service", "Observatory", "Storm Center", "Climate Lab"),
    "music": ("Records", "Philharmonic", "Sound", "Ensemble", "Choir"),
    "tv": ("Network", "Broadcasting", "Channel", "Television", "Productions"),
    "movies": ("Pictures", "Films", "Studios", "Cinema", "Entertainment"),
}
EVENT_WORDS = ("Summit", "Festival", "Cup", "Open", "Classic", "Expo", "Marathon", "Awards", "Fair", "Games")
