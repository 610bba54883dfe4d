DROP TABLE pricings;
