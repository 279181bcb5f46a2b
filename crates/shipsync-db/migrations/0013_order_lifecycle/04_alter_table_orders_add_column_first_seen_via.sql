-- How shipsync first learned of an order: 'webhook' or 'poll' (NULL: before
-- issue 14, always a poll).
ALTER TABLE orders ADD COLUMN first_seen_via TEXT;
