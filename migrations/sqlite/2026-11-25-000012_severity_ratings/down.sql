DROP TABLE severity_ratings;
