# The site "web" of the helper config. Its servers come from CAP_CONFIG (config/deploy.rb).
