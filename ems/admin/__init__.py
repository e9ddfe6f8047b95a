"""The operator's side: administrator accounts and what the site dashboard shows."""
