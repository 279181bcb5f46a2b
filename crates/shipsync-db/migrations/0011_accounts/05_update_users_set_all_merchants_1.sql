UPDATE users SET all_merchants = 1
    WHERE role = 'staff'
      AND NOT EXISTS (SELECT 1 FROM user_merchants um WHERE um.user_id = users.id);
