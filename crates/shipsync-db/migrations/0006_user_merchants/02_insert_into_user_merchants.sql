INSERT INTO user_merchants (user_id, merchant_id)
    SELECT id, merchant_id FROM users
    WHERE role = 'staff' AND merchant_id IS NOT NULL AND merchant_id <> '';
