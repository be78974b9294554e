-- Orders as the shop records them (a seed kept as CSV); some break the business's rules.
MODEL (
    name raw.orders,
    kind SEED (path '../../seeds/orders.csv'),
    grain order_id,
    columns (
        order_id INTEGER, customer_tier VARCHAR, email VARCHAR, quantity INTEGER,
        unit_price DECIMAL(10, 2), discount DECIMAL(4, 2), total DECIMAL(10, 2),
        order_date DATE, ship_date DATE
    )
);
