UPDATE users SET merchant_id = NULL WHERE role = 'staff';
