"""Install media: remaster EL netinstall ISOs and write USB keys that find their kickstart by label."""
