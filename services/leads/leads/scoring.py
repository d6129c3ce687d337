"""The rule-based lead score (0-100), documented in docs/scoring.md.

A lead created without a score gets `initial_score`; every activity logged on
it afterwards moves the score by `ACTIVITY_POINTS` (capped at 0 and 100).
"""
import re

BASE = 10

SENIOR_TITLES = ("ceo", "cto", "cfo", "coo", "cmo", "chief", "founder", "owner", "president",
                 "vp", "vice president", "director", "head")
MANAGER_TITLES = ("manager", "lead", "principal")
FREE_MAIL = {"gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "live.com", "aol.com",
             "icloud.com", "proton.me", "protonmail.com", "gmx.com", "mail.com", "yandex.com"}
SOURCE_POINTS = {"referral": 20, "facebook ad": 10, "linkedin": 10, "website": 10, "google": 10}

ACTIVITY_POINTS = {"meeting": 15, "call": 10, "email_opened": 5, "page_visit": 3,
                   "note_created": 0, "status_change": 0}


def clamp(score):
    return max(0, min(100, int(score)))


def initial_score(email, company=None, job_title=None, phone=None, source=None, value=0):
    score = BASE
    domain = email.rsplit("@", 1)[-1].lower()
    if domain not in FREE_MAIL:
        score += 10                       # a business address
    if company:
        score += 10
    if phone:
        score += 10
    words = re.findall(r"[a-z]+", (job_title or "").lower())
    phrase = " ".join(words)
    if any((" " in title and title in phrase) or title in words for title in SENIOR_TITLES):
        score += 25
    elif any(title in words for title in MANAGER_TITLES):
        score += 10
    score += SOURCE_POINTS.get((source or "").strip().lower(), 0)
    value = float(value or 0)
    if value >= 10000:
        score += 15
    elif value >= 1000:
        score += 10
    elif value > 0:
        score += 5
    return clamp(score)


def after_activity(score, activity_type):
    return clamp(score + ACTIVITY_POINTS.get(activity_type, 0))
