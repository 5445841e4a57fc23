"""Persian-aware text normalization: one spelling for the letters and digits people mix."""

from __future__ import annotations

import re
import unicodedata

_LETTERS = str.maketrans(
    {
        "ي": "ی",
        "ى": "ی",
        "ك": "ک",
        "ە": "ه",
        "ة": "ه",
        "ؤ": "و",
        "إ": "ا",
        "أ": "ا",
        "ٱ": "ا",
        "۰": "0",
        "۱": "1",
        "۲": "2",
        "۳": "3",
        "۴": "4",
        "۵": "5",
        "۶": "6",
        "۷": "7",
        "۸": "8",
        "۹": "9",
        "٠": "0",
        "١": "1",
        "٢": "2",
        "٣": "3",
        "٤": "4",
        "٥": "5",
        "٦": "6",
        "٧": "7",
        "٨": "8",
        "٩": "9",
        "\u200c": " ",
        "\u200f": "",
        "\u200e": "",
        "ـ": "",
    }
)
_DIACRITICS = re.compile(r"[\u064b-\u065f\u0670]")
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Lower-cased, Arabic letter forms and digits made Persian/Latin, ZWNJ and tatweel folded,
    diacritics dropped, whitespace collapsed. Used for matching, never for display."""
    text = unicodedata.normalize("NFKC", text).translate(_LETTERS)
    text = _DIACRITICS.sub("", text)
    return _SPACE.sub(" ", text).strip().casefold()


_PERSIAN = re.compile(r"[\u0600-\u06ff]")
_LATIN = re.compile(r"[A-Za-z]")


def detect_language(text: str) -> str:
    """`fa` when Persian/Arabic letters outnumber Latin ones, else `en`."""
    persian = len(_PERSIAN.findall(text))
    return "fa" if persian and persian >= len(_LATIN.findall(text)) else "en"


# --- Matching: words as the FAQ bot compares them ----------------------------------------------

_PUNCT = re.compile(r"[^\w\s]|_")
_PREFIXES = frozenset({"می", "نمی"})
"""Verb prefixes that a lost ZWNJ turned into words of their own (می خواهم)."""
_SUFFIX_WORDS = frozenset(
    {"ها", "های", "هایی", "هایم", "هایت", "هایش", "هایمان", "هایتان", "هایشان"}
    | {"ام", "ات", "اش", "ای", "مان", "تان", "شان", "ایم", "اید", "اند"}
)
"""Suffixes that a ZWNJ turned into words of their own (بسته ها، کرده ام)."""

_COLLOQUIAL = {
    "میخوام": "میخواهم",
    "نمیخوام": "نمیخواهم",
    "میخوای": "میخواهی",
    "میخواین": "میخواهید",
    "میتونم": "میتوانم",
    "نمیتونم": "نمیتوانم",
    "میتونین": "میتوانید",
    "میتونید": "میتوانید",
    "بتونم": "بتوانم",
    "چیه": "چیست",
    "میشه": "میشود",
    "نمیشه": "نمیشود",
    "بشه": "بشود",
    "برسه": "برسد",
    "چی": "چه",
    "کجاس": "کجاست",
    "کجان": "کجا",
    "چنده": "چند",
    "چقده": "چقدر",
    "چقد": "چقدر",
    "چطوری": "چطور",
    "چجوری": "چطور",
    "چجور": "چطور",
    "چطو": "چطور",
    "چگونه": "چطور",
    "کدوم": "کدام",
    "کدوما": "کدام",
    "اومد": "آمد",
    "اومده": "آمده",
    "نیومده": "نیامده",
    "نیومد": "نیامد",
    "بیام": "بیایم",
    "برگردونم": "برگردانم",
    "برگردونید": "برگردانید",
    "برگردونین": "برگردانید",
    "بدم": "بدهم",
    "میدم": "میدهم",
    "بدین": "بدهید",
    "میدین": "میدهید",
    "داره": "دارد",
    "دارن": "دارند",
    "دارین": "دارید",
    "هستین": "هستید",
    "کنین": "کنید",
    "بکنین": "بکنید",
    "تومن": "تومان",
    "تومنی": "تومانی",
    "اینو": "این",
    "اونو": "آن",
    "اون": "آن",
    "اونا": "آنها",
    "رو": "را",
    "یه": "یک",
    "واسه": "برای",
    "خونه": "خانه",
    "دیگه": "دیگر",
    "اگه": "اگر",
    "الان": "اکنون",
    "پس‌فردا": "پسفردا",
    "ok": "ok",
}

# fmt: off
STOP_WORDS = frozenset(
    {
        # Persian: function words, light verbs, greetings and politeness
        "و", "در", "به", "از", "که", "این", "آن", "را", "با", "برای", "است", "هست", "هستش",
        "من", "ما", "شما", "تو", "او", "یک", "هم", "یا", "آیا", "ای", "اگر", "تا", "نه", "بله",
        "سلام", "ممنون", "مرسی", "متشکرم", "لطفا", "لطف", "خیلی", "باید", "شود", "میشود",
        "بشود", "کنم", "کنید", "کرد", "کردم", "کردن", "کن", "بکنم", "بکنید", "دارم", "دارد",
        "دارید", "داریم", "هستید", "هستم", "بود", "بودم", "شده", "شد", "بشه", "بشم", "ولی",
        "اما", "دیگر", "حتما", "چه", "چیست", "اکنون", "هنوز", "خب", "خوب", "روز بخیر", "ها",
        "آقا", "خانم", "جان", "عزیز", "مگه", "مگر", "بر", "روی", "هر", "همه", "میخواهم",
        "خواهم", "میخواستم", "خواستم", "میخواستیم", "لطفاً", "ی", "میتوانم", "نمیتوانم",
        "میتوانید", "میتوان", "بتوانم", "توان", "نمیشود", "براتون", "برات", "برام", "بهتون",
        "باهاتون", "ازتون", "ازشون", "بهشون", "باهاش", "بهش",
        # English
        "a", "an", "the", "is", "are", "am", "was", "were", "be", "been", "do", "does", "did",
        "i", "me", "my", "mine", "you", "your", "yours", "we", "our", "us", "it", "its", "it's",
        "this", "that", "these", "those", "to", "of", "for", "in", "on", "at", "by", "with",
        "from", "and", "or", "but", "so", "if", "can", "could", "would", "should", "will",
        "shall", "may", "might", "please", "pls", "plz", "hi", "hello", "hey", "thanks",
        "thank", "thx", "there", "here", "just", "also", "some", "any", "have", "has", "had",
        "im", "i'm", "what's", "whats", "s", "t", "don't", "dont", "not", "no", "yes", "ok",
        "okay", "a lot", "lot", "very", "really", "want", "like", "need",
        "get", "got", "about", "all", "still", "yet", "one", "them", "they", "he", "she",
        "someone", "somebody", "something", "else", "many", "dear", "sir", "madam", "good",
        "morning", "evening", "afternoon", "how", "what",
        "where", "when", "which",
    }
)
# fmt: on
"""Words that carry no topic: dropped from both questions and entries before matching."""

_FA_SUFFIXES = (
    "هایمان", "هایتان", "هایشان", "هایم", "هایت", "هایش", "هایی", "های", "ها",
    "مان", "تان", "شان", "تون", "شون", "مون", "مو", "تو", "شو",
    "ام", "ات", "اش", "ید", "یم", "ند", "ین", "م",
)  # fmt: skip
_DOUBLED = re.compile(r"([bcdfgkmnprt])\1$")


def _stem_fa(word: str) -> str:
    for prefix in ("نمی", "می"):
        if word.startswith(prefix) and len(word) - len(prefix) >= 3:
            word = word[len(prefix) :]
            break
    for suffix in _FA_SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _stem_en(word: str) -> str:
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 5 and word.endswith("ing"):
        word = word[:-3]
    elif len(word) > 4 and word.endswith("ed"):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    if len(word) > 4 and word.endswith("y"):
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return _DOUBLED.sub(r"\1", word)


def stem(word: str) -> str:
    """A light stem: Persian verb prefixes and plural/possessive/person suffixes, English
    plural and -ing/-ed/-y/-e endings. Crude but the same on both sides of a comparison."""
    if _PERSIAN.match(word):
        return _stem_fa(word)
    if word.isascii() and word.isalpha():
        return _stem_en(word)
    return word


def words(text: str) -> list[str]:
    """Normalized words with punctuation dropped, ZWNJ-split prefixes/suffixes joined back and
    colloquial Persian spellings made written (میخوام → میخواهم). Stop words kept."""
    raw = _PUNCT.sub(" ", normalize(text)).split()
    out: list[str] = []
    glue_next = False
    for word in raw:
        if glue_next and out:
            out[-1] += word
            glue_next = False
        elif word in _SUFFIX_WORDS and out and _PERSIAN.match(out[-1]):
            out[-1] += word
        else:
            out.append(word)
        glue_next = word in _PREFIXES
    result = []
    for word in out:
        word = _COLLOQUIAL.get(word, word)
        if word.startswith(("می", "نمی")) and len(word) > 4:
            if word.endswith("ه"):  # colloquial 3rd person: میرسه → میرسد
                word = word[:-1] + "د"
            elif word.endswith("ین"):  # colloquial 2nd plural: میدین → میدید
                word = word[:-2] + "ید"
        result.append(word)
    return result


_SYNONYMS = {
    # Persian (stems): one word for each thing customers name in several ways
    "کنسل": "لغو",
    "منصرف": "لغو",
    "انصراف": "لغو",
    "نشانی": "آدرس",
    "عوض": "تغییر",
    "ویرایش": "تغییر",
    "شعبه": "فروشگاه",
    "شعبت": "فروشگاه",
    "مغازه": "فروشگاه",
    "برگردان": "مرجوع",
    "برگرداند": "مرجوع",
    "مرجوعی": "مرجوع",
    "بازگرداند": "مرجوع",
    "بازگرداندن": "مرجوع",
    "خراب": "آسیب",
    "شکسته": "آسیب",
    "معیوب": "آسیب",
    "آسیبدیده": "آسیب",
    "قسطی": "قسط",
    "اقساط": "قسط",
    "اقساطی": "قسط",
    "اکانت": "حساب",
    "پسورد": "رمز",
    "جنس": "کالا",
    "محصول": "کالا",
    "محصولات": "کالا",
    "کالاها": "کالا",
    "مرسوله": "بسته",
    "تعمیرات": "تعمیر",
    "کوپن": "تخفیف",
    "کادو": "هدیه",
    "اورجینال": "اصل",
    "وجه": "پول",
    "مبلغ": "پول",
    "هزینه": "قیمت",
    "کرایه": "قیمت",
    "پیگیری": "رهگیری",
    "فرست": "ارسال",
    "فرستاد": "ارسال",
    "بفرست": "ارسال",
    # English (stems)
    "parcel": "packag",
    "shipment": "packag",
    "ship": "deliver",
    "dispatch": "deliver",
    "instalment": "installment",
    "colour": "color",
    "broken": "damag",
    "crack": "damag",
    "defectiv": "damag",
    "fix": "repair",
    "store": "shop",
    "coupon": "discount",
    "promo": "discount",
    "voucher": "discount",
    "register": "sign",
    "fee": "cost",
    "charg": "cost",
    "pric": "cost",
    "guarante": "warrant",
}
"""Words (after stemming) that customers use for the same thing, folded to one."""


def fold(term: str) -> str:
    """The one word a synonym stands for (itself if it has none)."""
    return _SYNONYMS.get(term, term)


_LOOSE_SUFFIXES = ("ش", "م", "ت", "ی", "ه", "و", "ون", "یی", "ای", "های", "ها", "تون", "شون")
_LOOSE_PREFIXES = ("ب", "ن", "نمی", "می")


def loose_stems(term: str) -> list[str]:
    """Shorter readings of a Persian word the light stemmer left alone (وجهش → وجه, بفرست →
    فرست): the matcher tries them only when the word itself is not in its vocabulary."""
    if not _PERSIAN.match(term):
        return []
    found = []
    for word in (term, *(term[len(p) :] for p in _LOOSE_PREFIXES if term.startswith(p))):
        if word != term and len(word) >= 2:
            found.append(word)
        for suffix in _LOOSE_SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 2:
                found.append(word[: -len(suffix)])
    return [fold(w) for w in found]


def terms(text: str) -> list[str]:
    """What matching compares: `words()` without stop words, stemmed, synonyms folded."""
    out = []
    for word in words(text):
        if word in STOP_WORDS:
            continue
        stemmed = stem(word)
        stemmed = fold(stemmed)
        if stemmed and stemmed not in STOP_WORDS:
            out.append(stemmed)
    return out
