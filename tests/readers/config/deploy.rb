# Capistrano requires this file; the stage file does the work.
set :application, "aws-deploy-helper-reader"
