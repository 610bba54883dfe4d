DROP TABLE findings;
DROP TABLE image_tags;
DROP TABLE images;
DROP TABLE registries;
