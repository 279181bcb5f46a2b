-- Staff users limited to several merchants: one row per (user, merchant).
-- A Staff user without rows sees every merchant. users.merchant_id keeps
-- only a Merchant user's own merchant; a Staff user's one merchant (the
-- limit 0005 allowed) moves here. No foreign key on merchant_id, as in
-- 0005: deleting a merchant narrows the users rather than failing.

CREATE TABLE user_merchants (
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    merchant_id TEXT NOT NULL,
    PRIMARY KEY (user_id, merchant_id)
);
