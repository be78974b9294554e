-- The CRM's customers (a seed kept as CSV), keyed CUST-00001.
MODEL (
    name raw.crm_customers,
    kind SEED (path '../../seeds/crm_customers.csv'),
    grain customer_id,
    columns (customer_id VARCHAR, name VARCHAR, email VARCHAR)
);
