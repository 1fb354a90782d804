"""E-mail: Japanese templates, the SQL outbox, and the SMTP delivery worker."""
