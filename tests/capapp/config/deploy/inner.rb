# The site "inner" of the helper config. Its servers come from CAP_CONFIG (config/deploy.rb).
