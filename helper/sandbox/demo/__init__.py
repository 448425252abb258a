"""`aws-deploy-helper sandbox ...`: start both emulators, seed the demo fleet, run its deploy job."""
