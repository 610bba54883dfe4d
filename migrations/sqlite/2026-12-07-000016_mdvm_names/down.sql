DROP TABLE mdvm_names;
