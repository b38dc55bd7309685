"""Operations: doctor (deployment checklist); backup, restore and panic come later."""
