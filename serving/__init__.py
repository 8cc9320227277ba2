"""The decision API: eligibility, variants, send times, outcomes."""
